/**
 * ipamd on one node as a DaemonSet keeps it: the real dist/ipamd.mjs started the way the ipamd
 * integration fixture starts it (one state directory for socket, checkpoint and pending-del notes,
 * reused by every restart), restarted after it dies. The soak kills it with SIGKILL at chosen
 * moments (mid-ADD, mid-ENI-create, at start, idle); a death the soak did not cause is a violation
 * (a transient error must never end the daemon) and is restarted with the kubelet's back-off.
 * Each run's log is kept in the run's log directory.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance, LocalVpc } from '../../../infra/local-vpc/index.js';
import { type Ipamd, rawRequest, type Scenario } from '../ipamd/fixture.js';
import type { Rng } from './random.js';
import type { Tally } from './tally.js';

export type KillKind = 'mid-add' | 'mid-eni-create' | 'at-start' | 'idle';

export interface DaemonSetOptions {
  s: Scenario;
  node: Instance;
  label: string;
  env: Record<string, string>;
  dir: string;
  logDir: string;
  rng: Rng;
  tally: Tally;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class IpamdDaemonSet {
  ipamd: Ipamd | undefined;
  private generation = 0;
  private stopped = false;
  /** Deaths the soak caused, by process: their exits are expected. */
  private readonly killedByUs = new WeakSet<Ipamd>();
  private crashes = 0;
  private killAtStartArmed = false;
  private restarting: Promise<void> | null = null;

  constructor(private readonly o: DaemonSetOptions) {}

  get socketPath(): string {
    return join(this.o.dir, 'ipamd.sock');
  }

  get checkpointPath(): string {
    return join(this.o.dir, 'ipam.json');
  }

  start(): void {
    const ipamd = this.o.s.startIpamd(this.o.node, this.o.env, this.o.dir);
    this.ipamd = ipamd;
    const gen = ++this.generation;
    this.o.tally.inc('ipamd started');
    this.o.tally.note(`${this.o.label} ipamd run ${gen} started`);
    ipamd.proc.once('close', (code, signal) => this.onExit(ipamd, gen, code, signal));
    if (this.killAtStartArmed) {
      this.killAtStartArmed = false;
      const after = this.o.rng.between(50, 1500);
      setTimeout(() => {
        if (this.ipamd !== ipamd || !ipamd.running) return;
        const serving = ipamd.logs.some((l) => l.includes('"ipamd serving"'));
        this.kill(serving ? 'idle' : 'at-start');
      }, after);
    }
  }

  private onExit(ipamd: Ipamd, gen: number, code: number | null, signal: NodeJS.Signals | null): void {
    writeFileSync(join(this.o.logDir, `${this.o.label}-ipamd-${gen}.log`), `${ipamd.logs.join('\n')}\n`);
    this.o.tally.note(`${this.o.label} ipamd run ${gen} exited (${signal ?? code})`);
    if (this.stopped) return;
    let delay: number;
    if (this.killedByUs.has(ipamd)) {
      this.crashes = 0;
      delay = this.o.rng.between(200, 1200);
    } else {
      // A daemon that ends by itself is what a DaemonSet shows as CrashLoopBackOff.
      this.crashes++;
      const last = ipamd
        .events()
        .slice(-6)
        .map((e) => `${String(e.msg)}${e.err ? ` (${String(e.err)})` : ''}`)
        .join(' | ');
      this.o.tally.violate(
        'ipamd-exited-by-itself',
        `ipamd on ${this.o.label} (run ${gen}) exited with ${signal ?? code}: ${last}`,
      );
      delay = Math.min(1000 * 2 ** (this.crashes - 1), 8000);
    }
    this.restarting = sleep(delay).then(() => {
      this.restarting = null;
      if (!this.stopped) this.start();
    });
  }

  /** SIGKILL now, counted under `kind`; the DaemonSet restarts it. */
  kill(kind: KillKind): void {
    const ipamd = this.ipamd;
    if (!ipamd?.running || !ipamd.proc.pid) return;
    this.killedByUs.add(ipamd);
    this.o.tally.inc(`ipamd-kill ${kind}`);
    this.o.tally.note(`${this.o.label} ipamd kill -9 (${kind})`);
    process.kill(ipamd.proc.pid, 'SIGKILL');
  }

  /** The next start is killed again before (or soon after) it serves. */
  armKillAtStart(): void {
    this.killAtStartArmed = true;
  }

  /** Resolves once ipamd answers health with ready (across restarts). */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.ipamd?.running) {
        const h = await rawRequest(this.socketPath, JSON.stringify({ v: 1, op: 'health' }), 5_000).catch(
          () => null,
        );
        if (h?.ok && h.result?.ready === true) return;
      }
      await sleep(200);
    }
    throw new Error(`ipamd on ${this.o.label} not ready within ${timeoutMs} ms`);
  }

  /** Stops restarting and kills the daemon (SIGKILL: the state on disk is what the next run reads). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.restarting;
    const ipamd = this.ipamd;
    if (ipamd?.running) {
      this.killedByUs.add(ipamd);
      await ipamd.kill('SIGKILL');
    }
  }
}

export interface KillSchedulerOptions {
  vpc: LocalVpc;
  node: Instance;
  daemonSet: IpamdDaemonSet;
  rng: Rng;
  tally: Tally;
  /** Seconds between kills on the clock (uniform in the range). */
  everySeconds: [number, number];
  /** Probability that ipamd is killed after an ENI create of its node. */
  eniCreateKillProbability: number;
  /** Multiplies EC2/IMDS figures (the VPC's time scale). */
  timeScale: number;
  /** Stretches EC2's consistency window for a while (a kill inside a window is the harsh case). */
  stretchConsistency: (windowMs: number, forMs: number) => void;
}

/**
 * Chooses when and how ipamd dies on one node: on a clock (mid-ADD, at start, idle), and on every ENI
 * the node creates, with probability `eniCreateKillProbability`, somewhere between the create and the
 * ENI being usable (attach, IMDS, addresses, host routes), half the time inside a long consistency
 * window (ipamd then restarts while EC2 does not show the new ENI yet).
 */
export class KillScheduler {
  private stopped = false;
  private loops: Promise<void>[] = [];
  private onAdd: (() => void) | null = null;
  private readonly caller: string;

  constructor(private readonly o: KillSchedulerOptions) {
    this.caller = `AKID${o.node.id}`;
  }

  /** The runtime calls this when it starts an ADD. */
  addStarted(): void {
    const fire = this.onAdd;
    this.onAdd = null;
    fire?.();
  }

  start(): void {
    this.loops = [this.onClock(), this.onEniCreate()];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onAdd = null;
    await Promise.all(this.loops);
  }

  private async sleepUnlessStopped(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.stopped && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
    return !this.stopped;
  }

  private async onClock(): Promise<void> {
    const { daemonSet } = this.o;
    const rng = this.o.rng.fork('clock');
    while (await this.sleepUnlessStopped(rng.between(...this.o.everySeconds) * 1000)) {
      const kind = rng.weighted<Exclude<KillKind, 'mid-eni-create'>>({
        'mid-add': 3,
        'at-start': 2,
        idle: 1,
      });
      switch (kind) {
        case 'mid-add': {
          // Killed a few ms after the runtime starts an ADD: inside ipamd's handling of it, or just before.
          const delay = rng.between(0, 30);
          let fired = false;
          this.onAdd = () => {
            fired = true;
            setTimeout(() => daemonSet.kill('mid-add'), delay);
          };
          for (let i = 0; i < 50 && !fired && !this.stopped; i++) await sleep(100);
          if (!fired) {
            this.onAdd = null;
            if (!this.stopped) daemonSet.kill('idle');
          }
          break;
        }
        case 'at-start':
          daemonSet.armKillAtStart();
          daemonSet.kill('idle');
          break;
        default:
          daemonSet.kill('idle');
      }
    }
  }

  private async onEniCreate(): Promise<void> {
    const rng = this.o.rng.fork('eni-create');
    const created = () => this.o.vpc.callLog.count('CreateNetworkInterface', this.caller);
    let seen = created();
    let lastKill = 0;
    while (await this.sleepUnlessStopped(100)) {
      const now = created();
      if (now === seen) continue;
      seen = now;
      this.o.tally.inc('eni-create seen');
      // Not every create: a daemon killed on each one would never get its pool to grow.
      if (Date.now() - lastKill < 20_000 || !rng.chance(this.o.eniCreateKillProbability)) continue;
      lastKill = Date.now();
      const stretch = rng.chance(0.5);
      const delay = rng.between(0, 2500) * this.o.timeScale;
      if (stretch) this.o.stretchConsistency(10_000 * this.o.timeScale, 15_000 * this.o.timeScale);
      if (!(await this.sleepUnlessStopped(delay))) return;
      this.o.daemonSet.kill('mid-eni-create');
      seen = created(); // creations of the dying daemon are not the next one's
    }
  }
}
