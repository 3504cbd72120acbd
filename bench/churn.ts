/**
 * The churn soak's long form (test/integration/churn/soak.ts; the CI form is churn.test.ts): each
 * configuration churns for --seconds (default 240) on two m5.large nodes of the local VPC, with
 * ipamd and CNI process kills and EC2/IMDS faults, then settles and checks every invariant. Prints
 * each run's counts and seed; exits 1 when any run found a violation. Needs root and `npm run build`.
 *
 *   npx tsx bench/churn.ts [--config default|prefix|warm-ip|all] [--seconds 240] [--runs 1]
 *                          [--seed N] [--keep-logs] [--env KEY=VALUE ...]
 *
 * The local VPC runs at LOCAL_VPC_TIME_SCALE (default 1: EC2's realistic asynchrony); --seed (or
 * CHURN_SEED) replays a run's schedule; with --runs > 1 each run after the first takes seed + i.
 */
import { parseArgs } from 'node:util';
import { seedFrom } from '../test/integration/churn/random.js';
import { CONFIGS, runSoak } from '../test/integration/churn/soak.js';
import { bundleMissing } from '../test/integration/ipamd/fixture.js';

const { values: opts } = parseArgs({
  options: {
    config: { type: 'string', default: 'all' },
    seconds: { type: 'string', default: '240' },
    runs: { type: 'string', default: '1' },
    seed: { type: 'string', default: process.env.CHURN_SEED },
    'keep-logs': { type: 'boolean', default: false },
    /** Extra ipamd settings for every configuration, KEY=VALUE (e.g. IP_COOLDOWN_PERIOD=0). */
    env: { type: 'string', multiple: true, default: [] },
  },
});

const missing = bundleMissing();
if (missing) {
  console.error(missing);
  process.exit(2);
}
const configs = opts.config === 'all' ? CONFIGS : CONFIGS.filter((c) => c.name === opts.config);
if (configs.length === 0) {
  console.error(`--config must be one of ${CONFIGS.map((c) => c.name).join(', ')} or all`);
  process.exit(2);
}
const seconds = Number(opts.seconds);
const runs = Number(opts.runs);
if (!(seconds > 0) || !(Number.isInteger(runs) && runs > 0)) {
  console.error('--seconds must be > 0 and --runs a positive integer');
  process.exit(2);
}
const firstSeed = seedFrom(opts.seed);
const extraEnv = Object.fromEntries(
  (opts.env ?? []).map((kv) => {
    const eq = kv.indexOf('=');
    if (eq <= 0) {
      console.error(`--env takes KEY=VALUE, got "${kv}"`);
      process.exit(2);
    }
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  }),
);

const summary: string[] = [];
let failed = 0;
for (let run = 0; run < runs; run++) {
  const seed = (firstSeed + run) >>> 0;
  for (const config of configs) {
    const started = Date.now();
    const { tally, logDir } = await runSoak({
      config: { ...config, env: { ...config.env, ...extraEnv } },
      seed,
      seconds,
      keepLogs: opts['keep-logs'],
      progress: (line) => console.log(line),
    });
    console.log(tally.format());
    if (tally.violations.length > 0) {
      failed++;
      console.log(`  logs: ${logDir}`);
    }
    summary.push(
      `${config.name.padEnd(8)} seed ${String(seed).padEnd(10)} ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ` +
        `calls ${tally.sum('call')} (ADD ${tally.get('call ADD')}, DEL ${tally.get('call DEL')}, CHECK ${tally.get('call CHECK')}, GC ${tally.get('call GC')})  ` +
        `pods ${tally.get('pod started')}  ipamd kills ${tally.sum('ipamd-kill')}  ` +
        `cni kills ${tally.sum('cni-kill')}  faults ${tally.sum('fault')}  checks ${tally.sum('check')}  ` +
        `violations ${tally.sum('violation')}`,
    );
  }
}
console.log(`\n${summary.join('\n')}`);
process.exit(failed > 0 ? 1 : 0);
