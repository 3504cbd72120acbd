// A fresh clone must pass its tests on its own: no test, test helper or script a test runs may read a
// file outside the checkout (the reference tables live in test/data and lib/instance-types/seed).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve('.');
const SCANNED = ['test', 'scripts', 'bench', 'vitest.config.ts'];

function filesUnder(path: string): string[] {
  const st = statSync(path);
  if (st.isFile()) return /\.(ts|mts|mjs|js|sh)$/.test(path) ? [path] : [];
  return readdirSync(path).flatMap((name) => filesUnder(join(path, name)));
}

/** Before a literal: it is resolved from the file's own directory (imports, import.meta.dirname joins). */
const FROM_FILE =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bvi\.mock\(\s*|\bnew URL\(\s*|\brequire\(\s*|(?:import\.meta\.dirname|__dirname)\s*,\s*)$/;
/** Before a literal: it is a path the code opens relative to the checkout (the cwd of every test). */
const FROM_CWD =
  /(?:\b(?:readFileSync|readFile|existsSync|statSync|lstatSync|readdirSync|openSync|open|createReadStream|copyFileSync|cpSync)\(\s*|\bconst\s+\w+\s*=\s*|\bdefault:\s*)$/;

/** String literals in `source` that name a path outside `root`, with the line they are on. */
function pathsOutside(source: string, file: string, root = ROOT): string[] {
  const found: string[] = [];
  const literal = /(['"`])((?:\.\.\/|\/)[^'"`\s$]*)\1/g;
  for (let m = literal.exec(source); m; m = literal.exec(source)) {
    const text = m[2]!;
    const before = source.slice(Math.max(0, m.index - 60), m.index);
    const where = `${relative(root, file)}:${source.slice(0, m.index).split('\n').length}: ${text}`;
    if (text.startsWith('../')) {
      const base = FROM_FILE.test(before) ? dirname(file) : FROM_CWD.test(before) ? root : null;
      if (base !== null && relative(root, resolve(base, text)).startsWith('..')) found.push(where);
    } else if (/^\/work(\/|$)|^\/(home|root|mnt)\/./.test(text) || text.includes('/shared/')) {
      // Something under a machine's home or mount directories (the bare directories are fine: a
      // sandbox may name /home or /root to hide them).
      found.push(where);
    }
  }
  return found;
}

describe('a fresh clone is self-contained', () => {
  it('no test, helper, bench or script names a path outside the checkout', () => {
    const self = resolve('test/unit/repo/self-contained.test.ts');
    const offenders = SCANNED.flatMap(filesUnder)
      .map((f) => resolve(f))
      .filter((f) => f !== self)
      .flatMap((f) => pathsOutside(readFileSync(f, 'utf8'), f));
    expect(offenders).toEqual([]);
  });

  it('the check itself catches what used to break a fresh clone', () => {
    const file = join(ROOT, 'test/unit/maxpods/reference-table.ts');
    expect(pathsOutside("readFileSync('../shared/data/eni-max-pods.tsv', 'utf8')", file)).toHaveLength(1);
    expect(pathsOutside("const SEED = '/work/shared/data/instance-types.json';", file)).toHaveLength(1);
    // Imports climb out of test/unit/maxpods but stay inside the checkout.
    expect(pathsOutside("import { x } from '../../../maxpods/compute.js';", file)).toEqual([]);
    expect(pathsOutside("await import('../../../lib/net/index.js')", file)).toEqual([]);
    expect(pathsOutside("readFileSync('test/data/eni-max-pods.tsv')", file)).toEqual([]);
    expect(pathsOutside("resolve(import.meta.dirname, '../../..')", file)).toEqual([]);
    expect(pathsOutside("resolve(import.meta.dirname, '../../../..')", file)).toHaveLength(1);
    // Validation inputs are strings, not paths anything opens.
    expect(pathsOutside("it.each(['../etc'])", file)).toEqual([]);
  });

  it('the reference tables the tests compare against are in the repository', () => {
    for (const f of ['test/data/eni-max-pods.tsv', 'lib/instance-types/seed/instance-types.json']) {
      expect(statSync(f).size, f).toBeGreaterThan(10_000);
    }
  });
});
