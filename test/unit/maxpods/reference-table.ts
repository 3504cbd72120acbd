import { readFileSync } from 'node:fs';

/** test/data/eni-max-pods.tsv: "type<TAB>maxPods" lines, # comments. Throws on a malformed line. */
export function readReferenceTable(): Map<string, number> {
  const table = new Map<string, number>();
  for (const line of readFileSync('test/data/eni-max-pods.tsv', 'utf8').split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const [name, value, ...rest] = line.split('\t');
    if (!name || !value || rest.length > 0 || !/^\d+$/.test(value))
      throw new Error(`bad reference line ${line}`);
    table.set(name, Number(value));
  }
  return table;
}
