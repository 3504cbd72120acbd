/**
 * The churn soak, shared by the CI test (churn.test.ts, short) and the long form (bench/churn.ts):
 * two m5.large nodes of the local VPC, each with the real ipamd under a DaemonSet-like supervisor
 * and a container runtime making random CNI calls through the real shim, while ipamd is killed and
 * EC2/IMDS misbehave; then a settle, the invariants, every pod deleted, and the "nothing left" checks.
 * Returns the tally (counts, violations) and prints nothing itself unless `progress` is given.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { timeScaleFromEnv } from '../../../infra/local-vpc/asynchrony.js';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { Scenario } from '../ipamd/fixture.js';
import { IpamdDaemonSet, KillScheduler } from './daemonset.js';
import { FaultScheduler } from './faults.js';
import { Invariants, type NodeView } from './invariants.js';
import { pendingDels } from './node-state.js';
import { Rng } from './random.js';
import { NodeRuntime } from './runtime.js';
import { Tally } from './tally.js';

export interface SoakConfig {
  name: string;
  /** ipamd settings of this configuration (on top of COMMON_ENV). */
  env: Record<string, string>;
}

export const CONFIGS: readonly SoakConfig[] = [
  { name: 'default', env: {} },
  { name: 'prefix', env: { ENABLE_PREFIX_DELEGATION: 'true' } },
  { name: 'warm-ip', env: { WARM_IP_TARGET: '2', MINIMUM_IP_TARGET: '4' } },
];

/**
 * ipamd settings for every configuration: short loops, so a minute holds many pool changes, and a
 * short cooldown, so addresses go to new pods (and late DELs meet them) within the run. Not 0: the
 * cooldown is what keeps an address from a new pod while the DEL that released it finishes.
 */
const COMMON_ENV: Record<string, string> = {
  IP_COOLDOWN_PERIOD: '4',
  IPAMD_LEAKED_ENI_START_DELAY_MAX_SECONDS: '0',
  IPAMD_SHRINK_INTERVAL_SECONDS: '3',
  IPAMD_RECONCILE_INTERVAL_SECONDS: '5',
  IPAMD_POOL_CHECK_INTERVAL_SECONDS: '0.5',
  AWS_VPC_K8S_CNI_LOGLEVEL: 'debug',
};

export interface SoakOptions {
  config: SoakConfig;
  seed: number;
  /** How long the churn runs before the settle. */
  seconds: number;
  /** Calls in flight per node at most. */
  workers?: number;
  /** Live pods per node at most (the target moves between 0 and this). */
  maxLive?: number;
  killEverySeconds?: [number, number];
  /**
   * IPAMD_LEAKED_ENI_AGE_SECONDS (default 30): an ENI created by an ipamd killed before the attach is
   * left available; leaked-ENI cleanup must sweep it within the run (checked at settle).
   */
  leakedEniAgeSeconds?: number;
  /** Probability that ipamd is killed after one of its ENI creates (default 0.5). */
  eniCreateKillProbability?: number;
  faultEverySeconds?: [number, number];
  cniKillProbability?: number;
  phaseSeconds?: [number, number];
  /** Keep the ipamd logs even when the run passes. */
  keepLogs?: boolean;
  /** Called with a progress line every few seconds (the long form prints them). */
  progress?: (line: string) => void;
}

export interface SoakOutcome {
  tally: Tally;
  /** Where the ipamd logs are (removed after a passing run unless keepLogs). */
  logDir: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(timeoutMs: number, fn: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (fn()) return true;
    await sleep(250);
  }
  return false;
}

interface ChurnNode {
  label: string;
  instance: Instance;
  daemonSet: IpamdDaemonSet;
  runtime: NodeRuntime;
  killer: KillScheduler;
  view: NodeView;
}

export async function runSoak(o: SoakOptions): Promise<SoakOutcome> {
  const tally = new Tally(o.seed, o.config.name);
  const root = new Rng(o.seed).fork(o.config.name);
  const timeScale = timeScaleFromEnv();
  const leakAge = o.leakedEniAgeSeconds ?? 30;
  const logDir = mkdtempSync(join(tmpdir(), `vpccni-churn-${o.config.name}-`));
  const s = await Scenario.create();
  const faults = new FaultScheduler({
    vpc: s.vpc,
    rng: root.fork('faults'),
    tally,
    everySeconds: o.faultEverySeconds ?? [3, 8],
    timeScale,
  });
  const invariants = new Invariants(s.vpc, tally);
  const nodes: ChurnNode[] = [];
  let checker: NodeJS.Timeout | undefined;
  try {
    for (const label of ['a', 'b']) {
      const instance = await s.launch('m5.large');
      const dir = mkdtempSync(join(tmpdir(), `ipamd-churn-${label}-`));
      s.dirs.push(dir);
      const daemonSet = new IpamdDaemonSet({
        s,
        node: instance,
        label,
        env: {
          ...COMMON_ENV,
          IPAMD_LEAKED_ENI_AGE_SECONDS: String(leakAge),
          IPAMD_LEAKED_ENI_INTERVAL_SECONDS: String(Math.max(1, Math.ceil(leakAge / 3))),
          ...o.config.env,
        },
        dir,
        logDir,
        rng: root.fork(`daemonset-${label}`),
        tally,
      });
      const killer = new KillScheduler({
        vpc: s.vpc,
        node: instance,
        daemonSet,
        rng: root.fork(`kills-${label}`),
        tally,
        everySeconds: o.killEverySeconds ?? [8, 20],
        eniCreateKillProbability: o.eniCreateKillProbability ?? 0.5,
        timeScale,
        stretchConsistency: (windowMs, forMs) => faults.stretchConsistency(windowMs, forMs),
      });
      const runtime = new NodeRuntime({
        vpc: s.vpc,
        node: instance,
        label,
        socketPath: daemonSet.socketPath,
        rng: root.fork(`runtime-${label}`),
        tally,
        hooks: {
          onLive: (sb) => invariants.claim(sb),
          onReleased: (sb) => invariants.release(sb),
          onAddCall: () => killer.addStarted(),
        },
        workers: o.workers ?? 8,
        maxLive: o.maxLive ?? 16,
        cniKillProbability: o.cniKillProbability ?? 0.03,
        phaseSeconds: o.phaseSeconds ?? [4, 12],
        addGiveUpMs: 60_000,
      });
      const view: NodeView = {
        label,
        instance,
        checkpointPath: daemonSet.checkpointPath,
        socketPath: daemonSet.socketPath,
        sandboxes: () => runtime.sandboxes,
      };
      nodes.push({ label, instance, daemonSet, runtime, killer, view });
      daemonSet.start();
    }
    await Promise.all(nodes.map((n) => n.daemonSet.waitReady(120_000)));
    o.progress?.(`churn ${o.config.name}: seed ${o.seed}, ${o.seconds} s, logs in ${logDir}`);

    // The churn.
    const views = nodes.map((n) => n.view);
    checker = setInterval(() => invariants.checkRunning(views), 1000);
    faults.start();
    for (const n of nodes) {
      n.killer.start();
      n.runtime.start();
    }
    const churnEnd = Date.now() + o.seconds * 1000;
    while (Date.now() < churnEnd) {
      await sleep(Math.min(10_000, churnEnd - Date.now()));
      o.progress?.(
        `  ${tally.elapsed().toFixed(0)} s: ${nodes.map((n) => `${n.label} ${n.runtime.live().length} live`).join(', ')}; ` +
          `${tally.sum('call')} calls, ${tally.sum('ipamd-kill')} ipamd kills, ${tally.sum('fault')} faults, ` +
          `${tally.sum('violation')} violations`,
      );
    }

    // Settle: no more kills or faults, every call finished, ipamd serving, the runtime's GC done,
    // every note of a DEL made while ipamd was away processed.
    await Promise.all(nodes.map((n) => n.killer.stop()));
    await faults.stop();
    await Promise.all(nodes.map((n) => n.runtime.stop()));
    clearInterval(checker);
    checker = undefined;
    const settleRng = root.fork('settle');
    for (const n of nodes) {
      await n.daemonSet.waitReady(180_000);
      await n.runtime.ensureLive(settleRng);
      await n.runtime.gcUntilOk();
    }
    for (const n of nodes) {
      const done = await until(60_000, () => pendingDels(n.view.socketPath).length === 0);
      if (!done) tally.violate('pending-dels-left', `${n.label}: notes still there 60 s after settling`);
    }
    for (const n of nodes) await invariants.checkEnis(n.view, (leakAge + 90) * 1000);
    o.progress?.(`  settled at ${tally.elapsed().toFixed(0)} s: checking`);
    invariants.checkRunning(views);
    for (const n of nodes) {
      await invariants.checkSettled(n.view);
      await n.runtime.checkAll();
      await invariants.checkKernel(n.view, 'settled');
    }

    // Everything deleted: nothing may be left.
    await Promise.all(nodes.map((n) => n.runtime.deleteAll(settleRng)));
    for (const n of nodes) {
      await until(60_000, () => pendingDels(n.view.socketPath).length === 0);
      await invariants.checkSettled(n.view);
      await invariants.checkKernel(n.view, 'all pods deleted');
    }
    summarise(s, nodes, tally);
    return { tally, logDir };
  } finally {
    if (checker) clearInterval(checker);
    await faults.stop().catch(() => {});
    for (const n of nodes) {
      await n.killer.stop().catch(() => {});
      await n.daemonSet.stop().catch(() => {});
      await n.runtime.close().catch(() => {});
    }
    await s.close();
    writeFileSync(join(logDir, 'runtime.log'), `${tally.journal.join('\n')}\n`);
    if (!o.keepLogs && tally.violations.length === 0) rmSync(logDir, { recursive: true, force: true });
  }
}

/**
 * EC2 errors the soak's weather explains: injected 5xx, throttling, and a new ENI not visible yet
 * (the consistency window). Any other refusal means ipamd asked for something EC2 does not allow
 * (another ENI past the instance's limit, a device index in use, more addresses than the ENI takes).
 */
const WEATHER_ERRORS = new Set([
  'InternalError',
  'Unavailable',
  'RequestLimitExceeded',
  'InvalidNetworkInterfaceID.NotFound',
  // ENIs of killed ipamds hold their addresses until leaked-ENI cleanup deletes them (checked at settle).
  'InsufficientFreeAddressesInSubnet',
]);

/** EC2's answers (errors by code) and ipamd's own error and warning lines, as counts. */
function summarise(s: Scenario, nodes: ChurnNode[], tally: Tally): void {
  const callers = new Map(nodes.map((n) => [`AKID${n.instance.id}`, n.label]));
  for (const c of s.vpc.callLog.entries()) {
    const label = callers.get(c.caller);
    if (!label) continue;
    tally.inc('ec2 calls');
    if (!c.errorCode) continue;
    tally.inc(`ec2-error ${c.action}:${c.errorCode}`);
    if (!WEATHER_ERRORS.has(c.errorCode)) {
      tally.violate(
        'ec2-refused',
        `${label}: ${c.action} ${JSON.stringify(c.params ?? {})} -> ${c.errorCode}`,
      );
    }
  }
  for (const d of s.daemons) {
    for (const e of d.events()) {
      const level = Number(e.level);
      if (level >= 50) tally.inc(`ipamd-log error:${String(e.msg)}`);
      else if (level >= 40) tally.inc(`ipamd-log warn:${String(e.msg)}`);
    }
  }
}
