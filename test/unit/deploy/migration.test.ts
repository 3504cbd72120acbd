// docs/migration.md's "reference setting → here" table has a row for every variable of the AWS VPC CNI
// v1.23 README (test/data/reference-readme-settings.txt, taken from it), and every row that says
// "same" names a variable ipamd/config.ts reads.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ipamdEnvNames } from './helpers.js';

const listed = readFileSync('test/data/reference-readme-settings.txt', 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.startsWith('#'));
const doc = readFileSync('docs/migration.md', 'utf8');
const table = doc.split('## Reference setting → here')[1] ?? '';
const rows = new Map(
  [...table.matchAll(/^\| `([A-Za-z0-9_]+)` \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!] as const),
);

describe('docs/migration.md: reference setting → here', () => {
  it('has a row for every variable of the reference README', () => {
    expect(listed.length).toBe(50);
    expect(listed.filter((n) => !rows.has(n))).toEqual([]);
  });

  it('says "same" only for variables ipamd reads', () => {
    const reads = ipamdEnvNames();
    const same = [...rows].filter(([, here]) => here.startsWith('same')).map(([name]) => name);
    expect(same.length).toBeGreaterThan(30);
    expect(same.filter((n) => !reads.has(n))).toEqual([]);
  });

  it('names the rest in the start-up warning or says what replaces them', async () => {
    const { UNSUPPORTED_REFERENCE_SETTINGS } = await import('../../../ipamd/reference-settings.js');
    const warned = new Set(UNSUPPORTED_REFERENCE_SETTINGS.map((s) => s.name));
    for (const [name, here] of rows) {
      if (here.startsWith('not implemented')) expect(warned.has(name), name).toBe(true);
    }
  });
});
