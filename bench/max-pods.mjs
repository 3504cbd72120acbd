// Whole-process times of the built calculator (dist/max-pods.mjs), as a node boot or a planner sees them.
//   node bench/max-pods.mjs [runs=30]
// Prints median, p90 and min wall time and the mean CPU time per case, next to Node starting an empty
// ES module: the floor no Node program can beat.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BUNDLE = 'dist/max-pods.mjs';
const TARGET_ALL_MS = 150;

const runs = Number(process.argv[2] ?? 30);
if (!Number.isInteger(runs) || runs < 1) {
  console.error('usage: node bench/max-pods.mjs [runs]  (runs: a whole number >= 1)');
  process.exit(2);
}
if (!existsSync(BUNDLE)) {
  console.error(`${BUNDLE} is missing: run npm run build first`);
  process.exit(1);
}

// The floor: Node starting an empty ES module file, as it starts the bundle.
const scratch = mkdtempSync(join(tmpdir(), 'max-pods-bench-'));
const EMPTY = join(scratch, 'empty.mjs');
writeFileSync(EMPTY, '');
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

const cases = [
  { name: 'node start (floor)', args: [EMPTY] },
  { name: 'single type', args: [BUNDLE, '--instance-type', 'm5.large', '--cni-version', '1.18.3'] },
  {
    name: 'single type, prefix delegation',
    args: [
      BUNDLE,
      '--instance-type',
      'c6in.32xlarge',
      '--cni-version',
      '1.18.3',
      '--cni-prefix-delegation-enabled',
    ],
  },
  { name: '--all --output table', args: [BUNDLE, '--all', '--cni-version', '1.18.3', '--output', 'table'] },
  { name: '--all --output json', args: [BUNDLE, '--all', '--cni-version', '1.18.3', '--output', 'json'] },
];

/** CPU time (ms) of all waited-for children so far: cutime + cstime from /proc (Linux, 10 ms ticks). */
function childCpuMs() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    return Number.NaN;
  }
}

function time(args) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

console.log(
  `${BUNDLE}: ${(statSync(BUNDLE).size / 1024).toFixed(0)} KiB; ${runs} runs a case, node ${process.version}`,
);
// Round-robin over the cases, so load from other processes on the machine falls on all of them alike.
for (const c of cases) time(c.args); // warm the page cache
// Wall time suffers from other load on the machine; CPU time per run (averaged, so 10 ms ticks do not
// matter) shows the program's own cost.
const samples = cases.map(() => []);
const cpu = cases.map(() => 0);
for (let i = 0; i < runs; i++) {
  cases.forEach((c, j) => {
    const before = childCpuMs();
    samples[j].push(time(c.args));
    cpu[j] += childCpuMs() - before;
  });
}
const results = {};
const f = (v) => v.toFixed(1).padStart(6);
cases.forEach((c, j) => {
  const sorted = samples[j].sort((a, b) => a - b);
  const r = { min: sorted[0], median: pct(sorted, 50), p90: pct(sorted, 90), cpu: cpu[j] / runs };
  results[c.name] = r;
  console.log(
    `${c.name.padEnd(32)} median ${f(r.median)} ms   p90 ${f(r.p90)} ms   min ${f(r.min)} ms   cpu ${f(r.cpu)} ms/run`,
  );
});
const floor = results['node start (floor)'];
const above = (name) =>
  `${(results[name].median - floor.median).toFixed(1)} ms wall (median), ${(results[name].cpu - floor.cpu).toFixed(1)} ms cpu`;
console.log(
  `above the floor: single type ${above('single type')}; --all table ${above('--all --output table')}`,
);
const all = results['--all --output table'].median;
console.log(
  `--all table median ${all.toFixed(1)} ms vs target ${TARGET_ALL_MS} ms: ${all < TARGET_ALL_MS ? 'ok' : 'OVER'}`,
);
