/**
 * One node's container runtime under churn, as containerd drives CNI: a sandbox is a network
 * namespace plus the CNI calls made for it, each call the real shim (dist/aws-cni) exec'd in the
 * node's namespace with the pod's CNI_* environment and the netconf on stdin. Up to `workers` calls
 * are in flight at once, each worker drawing its next operation from its own seeded stream:
 *   ADD      a new sandbox; a failed ADD is torn down with DEL and retried with a new sandbox (as
 *            kubelet recreates the sandbox), "try again later" (11) included;
 *   DEL      of a live pod (sometimes after its namespace is gone), sometimes repeated;
 *   late DEL of a sandbox long gone, with its cached prevResult (its address may be a new pod's now);
 *   CHECK    of a live pod (must pass);
 *   GC       with every sandbox the runtime knows as valid (no call runs meanwhile, as CRI-O's
 *            ocicni holds its lock); it collects the pods the runtime "forgot" (namespace deleted,
 *            no DEL), which the forget operation makes.
 * A DEL is retried until it succeeds; any call may be killed with SIGKILL mid-way, and the runtime
 * then does what it does on any failure. What the calls must keep true is the Invariants' business;
 * the runtime reports each success and release to them.
 */
import type { ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { addressOf } from '../../../infra/local-vpc/demo/pods.js';
import { runCommand } from '../../../infra/local-vpc/fabric/shell.js';
import type { Instance, LocalVpc } from '../../../infra/local-vpc/index.js';
import { SHIM } from '../cni/node-calls.js';
import type { Rng } from './random.js';
import type { Tally } from './tally.js';

export type SandboxState = 'adding' | 'live' | 'deleting' | 'gone' | 'forgotten';

export interface Sandbox {
  /** The node's label (a, b). */
  node: string;
  podName: string;
  containerId: string;
  netns: string;
  netnsPath: string;
  state: SandboxState;
  /** The ADD result the runtime caches (prevResult of later DEL and CHECK calls). */
  result?: Record<string, unknown>;
  address?: string;
  /** An operation of the runtime is using the sandbox (the runtime serialises calls per sandbox). */
  busy: boolean;
  /** Whether its namespace still exists. */
  netnsExists: boolean;
}

/** What the runtime tells the invariants. */
export interface RuntimeHooks {
  /** ADD succeeded: the sandbox holds `address` now. */
  onLive(sb: Sandbox): void;
  /** The sandbox's address is no longer its own: its DEL succeeded, or a GC collected it. */
  onReleased(sb: Sandbox): void;
  /** An ADD call was started (ipamd kills "mid-ADD" hook on it). */
  onAddCall(): void;
}

export interface CallOutcome {
  /** The process's exit code (-1 when killed). */
  code: number;
  /** The CNI error code it printed, when it printed one. */
  cniCode?: number;
  killed: boolean;
  json?: Record<string, unknown>;
  out: string;
}

export interface RuntimeOptions {
  vpc: LocalVpc;
  node: Instance;
  label: string;
  socketPath: string;
  rng: Rng;
  tally: Tally;
  hooks: RuntimeHooks;
  /** Calls in flight at most (one per worker). */
  workers: number;
  /** The live-pod target moves between 0 and this (phases of growth and shrinkage). */
  maxLive: number;
  /** Probability that a call's process is killed with SIGKILL mid-way. */
  cniKillProbability: number;
  /** How long one phase (a live-pod target) lasts, seconds. */
  phaseSeconds: [number, number];
  /** How long a pod keeps trying to start (new sandboxes) before the runtime gives up on it, ms. */
  addGiveUpMs: number;
}

/**
 * CNI codes an ADD may fail with on a healthy node under churn: try again later (11), and no address
 * (101: every address held by a pod, one starting, one whose DEL has not reached ipamd yet).
 */
const EXPECTED_ADD_CODES = new Set([11, 101]);
const MAX_DEL_ATTEMPTS = 30;
/** A call still running after this long is hung (the shim's own answer timeout is 60 s). */
const HUNG_CALL_MS = 120_000;
const GONE_KEPT = 150;
/** Pod names a StatefulSet reuses: a new sandbox gets the name (and host veth name) of an old one. */
const STS_NAMES = Array.from({ length: 6 }, (_, i) => `sts-${i}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const backoff = (attempt: number) => Math.min(100 * 2 ** (attempt - 1), 2_000);

class CallGate {
  private inFlight = 0;
  private exclusiveRun: Promise<void> | null = null;
  private drained: (() => void) | null = null;

  async enter(): Promise<void> {
    while (this.exclusiveRun) await this.exclusiveRun;
    this.inFlight++;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0) this.drained?.();
  }

  /** Runs `fn` once no call is in flight, holding new calls back until it is done. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveRun) await this.exclusiveRun;
    let release!: () => void;
    this.exclusiveRun = new Promise((r) => {
      release = r;
    });
    try {
      while (this.inFlight > 0) {
        await new Promise<void>((r) => {
          this.drained = r;
        });
      }
      return await fn();
    } finally {
      this.drained = null;
      this.exclusiveRun = null;
      release();
    }
  }
}

type Op = 'add' | 'del' | 'check' | 'lateDel' | 'gc' | 'forget';

export class NodeRuntime {
  readonly sandboxes: Sandbox[] = [];
  /** Sandboxes DEL'd or collected, newest last: the late DELs' candidates. */
  private readonly gone: Sandbox[] = [];
  private readonly gate = new CallGate();
  private readonly children = new Set<ChildProcess>();
  private seq = 0;
  /** Pods still trying to start (between two sandboxes none of theirs may exist). */
  private readonly starting = new Set<string>();
  private nextWeb = 0;
  private stopping = false;
  private target = 0;
  private workerLoops: Promise<void>[] = [];
  private readonly ids: Rng;

  constructor(private readonly o: RuntimeOptions) {
    this.ids = o.rng.fork('container-ids');
  }

  get label(): string {
    return this.o.label;
  }

  /** Starts the workers and the phase clock; `stop()` ends them. */
  start(): void {
    const phases = this.o.rng.fork('phases');
    const phaseLoop = async () => {
      while (!this.stopping) {
        const lo = 0;
        const hi = this.o.maxLive;
        // Extremes more often than the middle: empty nodes shrink ENIs away, full ones grow them.
        this.target = phases.pick([lo, Math.ceil(hi / 4), Math.ceil(hi / 2), hi, hi]);
        this.o.tally.inc('phase');
        const until = Date.now() + phases.between(this.o.phaseSeconds[0], this.o.phaseSeconds[1]) * 1000;
        while (!this.stopping && Date.now() < until) await sleep(200);
      }
    };
    this.workerLoops = [
      phaseLoop(),
      ...Array.from({ length: this.o.workers }, (_, i) => this.worker(this.o.rng.fork(`worker-${i}`))),
    ];
  }

  /** Lets every worker finish what it is doing (retries included) and start nothing more. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workerLoops);
  }

  live(): Sandbox[] {
    return this.sandboxes.filter((s) => s.state === 'live');
  }

  /** Forgotten pods no GC has collected yet: ipamd must still hold their addresses. */
  forgotten(): Sandbox[] {
    return this.sandboxes.filter((s) => s.state === 'forgotten');
  }

  private idleLive(): Sandbox[] {
    return this.sandboxes.filter((s) => s.state === 'live' && !s.busy);
  }

  private async worker(rng: Rng): Promise<void> {
    while (!this.stopping) {
      const op = this.chooseOp(rng);
      try {
        await this.runOp(op, rng);
      } catch (err) {
        this.o.tally.violate('runtime-error', `${op} on ${this.o.label}: ${(err as Error).stack ?? err}`);
      }
      await sleep(rng.between(20, 250));
    }
  }

  private chooseOp(rng: Rng): Op {
    const live = this.live().length;
    const idle = this.idleLive().length;
    const late = this.gone.some((s) => !s.busy);
    return rng.weighted<Op>({
      add: live < this.target ? 6 : 0.5,
      del: idle === 0 ? 0 : live > this.target ? 6 : 1,
      check: idle > 0 ? 2 : 0,
      lateDel: late ? 1.5 : 0,
      gc: 0.15,
      forget: idle >= 3 ? 0.1 : 0,
    });
  }

  private async runOp(op: Op, rng: Rng): Promise<void> {
    switch (op) {
      case 'add':
        return this.addPod(rng);
      case 'del': {
        const sb = this.take(rng, this.idleLive());
        if (sb) await this.deletePod(sb, rng);
        return;
      }
      case 'check': {
        const sb = this.take(rng, this.idleLive());
        if (!sb) return;
        try {
          await this.check(sb, rng);
        } finally {
          sb.busy = false;
        }
        return;
      }
      case 'lateDel':
        return this.lateDel(rng);
      case 'gc':
        await this.gc(rng);
        return;
      case 'forget': {
        const sb = this.take(rng, this.idleLive());
        if (!sb) return;
        // The runtime lost the sandbox (a crash, a node reboot): its namespace goes, no DEL is made.
        // ipamd may release the address from then on (a restart sees the namespace gone; GC).
        sb.state = 'forgotten';
        this.note(`forget ${sb.podName} ${sb.containerId.slice(0, 12)} ${sb.netns} ${sb.address}`);
        await this.removeNetns(sb);
        sb.busy = false;
        this.o.hooks.onReleased(sb);
        this.o.tally.inc('pod forgotten');
        return;
      }
    }
  }

  private note(line: string): void {
    this.o.tally.note(`${this.o.label} ${line}`);
  }

  private take(rng: Rng, from: Sandbox[]): Sandbox | undefined {
    if (from.length === 0) return undefined;
    const sb = rng.pick(from);
    sb.busy = true;
    return sb;
  }

  conf(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      cniVersion: '1.1.0',
      name: 'aws-cni',
      type: 'aws-cni',
      ipamdSocket: this.o.socketPath,
      ...extra,
    };
  }

  /**
   * A pod name no running pod has (one pod, one sandbox at a time: a new sandbox of the same name
   * would take over the host veth name, as the plugin does for a StatefulSet pod recreated).
   */
  private pickPodName(rng: Rng): string {
    const inUse = new Set([
      ...this.starting,
      ...this.sandboxes.filter((s) => ['adding', 'live', 'deleting'].includes(s.state)).map((s) => s.podName),
    ]);
    const free = STS_NAMES.filter((n) => !inUse.has(n));
    if (free.length > 0 && rng.chance(0.25)) return rng.pick(free);
    return `web-${this.o.label}-${this.nextWeb++}`;
  }

  private containerId(): string {
    let id = '';
    for (let i = 0; i < 8; i++) id += this.ids.int(0, 0xffffffff).toString(16).padStart(8, '0');
    return id;
  }

  private async newSandbox(podName: string): Promise<Sandbox> {
    const netns = `${this.o.vpc.prefix}-${this.o.label}${this.seq++}`;
    const sb: Sandbox = {
      node: this.o.label,
      podName,
      containerId: this.containerId(),
      netns,
      netnsPath: `/var/run/netns/${netns}`,
      state: 'adding',
      busy: true,
      netnsExists: false,
    };
    this.sandboxes.push(sb);
    const add = await runCommand('ip', ['netns', 'add', netns]);
    if (add.code !== 0) throw new Error(`ip netns add ${netns}: ${add.stderr.trim()}`);
    sb.netnsExists = true;
    const lo = await runCommand('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    if (lo.code !== 0) throw new Error(`lo up in ${netns}: ${lo.stderr.trim()}`);
    return sb;
  }

  private async removeNetns(sb: Sandbox): Promise<void> {
    if (!sb.netnsExists) return;
    const r = await runCommand('ip', ['netns', 'delete', sb.netns]);
    if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) {
      throw new Error(`ip netns delete ${sb.netns}: ${r.stderr.trim()}`);
    }
    sb.netnsExists = false;
  }

  private retire(sb: Sandbox): void {
    sb.state = 'gone';
    sb.busy = false;
    const i = this.sandboxes.indexOf(sb);
    if (i >= 0) this.sandboxes.splice(i, 1);
    this.gone.push(sb);
    if (this.gone.length > GONE_KEPT) this.gone.splice(0, this.gone.length - GONE_KEPT);
  }

  /** Whether this call's process gets killed mid-way (never while the run is settling). */
  private killPlan(rng: Rng): number | undefined {
    if (this.stopping || !rng.chance(this.o.cniKillProbability)) return undefined;
    return rng.between(0, 80);
  }

  /** One CNI call through the shim, as the runtime execs it. */
  async call(
    command: 'ADD' | 'DEL' | 'CHECK' | 'GC',
    sb: Sandbox | null,
    conf: Record<string, unknown>,
    killAfterMs?: number,
    opts: { gated?: boolean } = {},
  ): Promise<CallOutcome> {
    const gated = opts.gated ?? true;
    if (gated) await this.gate.enter();
    try {
      return await this.exec(command, sb, conf, killAfterMs);
    } finally {
      if (gated) this.gate.leave();
    }
  }

  private exec(
    command: 'ADD' | 'DEL' | 'CHECK' | 'GC',
    sb: Sandbox | null,
    conf: Record<string, unknown>,
    killAfterMs?: number,
  ): Promise<CallOutcome> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      CNI_COMMAND: command,
      CNI_PATH: dirname(SHIM),
    };
    if (sb) {
      env.CNI_CONTAINERID = sb.containerId;
      env.CNI_NETNS = sb.netnsPath;
      env.CNI_IFNAME = 'eth0';
      env.CNI_ARGS = `IgnoreUnknown=1;K8S_POD_NAMESPACE=churn;K8S_POD_NAME=${sb.podName};K8S_POD_INFRA_CONTAINER_ID=${sb.containerId}`;
    }
    this.o.tally.inc(`call ${command}`);
    const child = this.o.vpc.runIn(this.o.node, SHIM, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    if (command === 'ADD') this.o.hooks.onAddCall();
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let killed = false;
      const running = () => child.exitCode === null && child.signalCode === null;
      const killTimer =
        killAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              if (!running()) return;
              killed = true;
              child.kill('SIGKILL');
            }, killAfterMs);
      const hungTimer = setTimeout(() => {
        this.o.tally.violate(
          'cni-call-hung',
          `${command} ${sb?.containerId ?? ''} on ${this.o.label} still running after ${HUNG_CALL_MS} ms`,
        );
        child.kill('SIGKILL');
      }, HUNG_CALL_MS);
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.once('error', (err) => {
        clearTimeout(killTimer);
        clearTimeout(hungTimer);
        this.children.delete(child);
        reject(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(killTimer);
        clearTimeout(hungTimer);
        this.children.delete(child);
        const wasKilled = killed && signal === 'SIGKILL';
        let json: Record<string, unknown> | undefined;
        try {
          json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
        } catch {
          json = undefined;
        }
        const exit = code ?? -1;
        const cniCode = exit !== 0 && typeof json?.code === 'number' ? json.code : undefined;
        this.note(
          `${command} ${sb ? `${sb.podName} ${sb.containerId.slice(0, 12)} ${sb.netns}` : ''} -> ${
            wasKilled
              ? 'killed'
              : exit === 0
                ? `ok ${command === 'ADD' && json ? addressOf(json) : ''}`
                : stdout.trim()
          }`,
        );
        if (wasKilled) this.o.tally.inc(`cni-kill ${command}`);
        else this.o.tally.inc(`exit ${command} ${exit === 0 ? 'ok' : `code-${cniCode ?? `exit-${exit}`}`}`);
        resolve({
          code: exit,
          killed: wasKilled,
          ...(cniCode !== undefined ? { cniCode } : {}),
          ...(json ? { json } : {}),
          out: `${stdout.trim()} ${stderr.trim()}`.trim().slice(0, 800),
        });
      });
      child.stdin?.on('error', () => {});
      child.stdin?.end(JSON.stringify(conf));
    });
  }

  /** Starts a pod: sandboxes until one's ADD succeeds, each failed one torn down with DEL. */
  private async addPod(rng: Rng, settling = false): Promise<void> {
    const podName = this.pickPodName(rng);
    this.starting.add(podName);
    try {
      await this.startPod(podName, rng, settling);
    } finally {
      this.starting.delete(podName);
    }
  }

  private async startPod(podName: string, rng: Rng, settling: boolean): Promise<void> {
    const deadline = Date.now() + this.o.addGiveUpMs;
    for (let attempt = 1; ; attempt++) {
      const sb = await this.newSandbox(podName);
      const r = await this.call('ADD', sb, this.conf(), this.killPlan(rng));
      if (r.code === 0 && !r.killed && r.json) {
        sb.result = r.json;
        sb.address = addressOf(r.json);
        sb.state = 'live';
        sb.busy = false;
        this.o.tally.inc('pod started');
        if (attempt > 1) this.o.tally.inc('retry add-sandbox', attempt - 1);
        this.o.hooks.onLive(sb);
        return;
      }
      if (!r.killed && !EXPECTED_ADD_CODES.has(r.cniCode ?? -1)) {
        this.o.tally.violate('add-failed', `${podName} ${sb.containerId} on ${this.o.label}: ${r.out}`);
      }
      // containerd tears a sandbox whose ADD failed down with DEL (no prevResult: there is none).
      await this.delUntilOk(sb, undefined, 'after-failed-add');
      await this.removeNetns(sb);
      this.retire(sb);
      if ((this.stopping && !settling) || Date.now() > deadline) {
        this.o.tally.inc('pod gave-up');
        return;
      }
      await sleep(backoff(attempt) * 2);
    }
  }

  /** DEL until it succeeds, as the kubelet retries the sandbox's teardown; false when it never did. */
  private async delUntilOk(
    sb: Sandbox,
    prevResult: Record<string, unknown> | undefined,
    why: string,
    rng?: Rng,
  ): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const conf = this.conf(prevResult ? { prevResult } : {});
      const r = await this.call('DEL', sb, conf, rng ? this.killPlan(rng) : undefined);
      if (r.code === 0 && !r.killed) {
        this.o.tally.inc(`del ${why}`);
        if (attempt > 1) this.o.tally.inc('retry del', attempt - 1);
        this.o.tally.maxDelAttempts = Math.max(this.o.tally.maxDelAttempts, attempt);
        return true;
      }
      if (attempt >= MAX_DEL_ATTEMPTS) {
        this.o.tally.violate(
          'del-never-succeeded',
          `${why} DEL of ${sb.podName} ${sb.containerId} on ${this.o.label}: ${attempt} attempts, last: ${r.out}`,
        );
        return false;
      }
      await sleep(backoff(attempt));
    }
  }

  private async deletePod(sb: Sandbox, rng: Rng): Promise<void> {
    sb.state = 'deleting';
    // Sometimes the namespace is gone before the DEL (a node rebooted, a runtime cleaned up first).
    if (rng.chance(0.1)) {
      await this.removeNetns(sb);
      this.o.tally.inc('del netns-gone-first');
    }
    const ok = await this.delUntilOk(sb, sb.result, 'pod', rng);
    if (ok) this.o.hooks.onReleased(sb);
    const repeats = rng.chance(0.3) ? rng.int(1, 2) : 0;
    for (let i = 0; i < repeats; i++) {
      if (rng.chance(0.5)) await this.removeNetns(sb);
      await this.delUntilOk(sb, sb.result, 'repeated', rng);
    }
    await this.removeNetns(sb);
    this.o.tally.inc('pod deleted');
    this.retire(sb);
  }

  /** A runtime retrying the DEL of a sandbox long gone, with its cached prevResult. */
  private async lateDel(rng: Rng): Promise<void> {
    const idle = this.gone.filter((s) => !s.busy);
    if (idle.length === 0) return;
    // Prefer sandboxes whose address a new pod holds now: those are the ones a wrong DEL would hurt.
    const reused = idle.filter((s) => s.address && this.holderOf(s.address));
    const sb = reused.length > 0 && rng.chance(0.7) ? rng.pick(reused) : rng.pick(idle);
    sb.busy = true;
    try {
      const holder = sb.address ? this.holderOf(sb.address) : undefined;
      await this.delUntilOk(sb, sb.result, 'late', rng);
      if (holder) {
        this.o.tally.inc('del late-on-reused-address');
        // The pod that holds the address now must be exactly as its ADD left it.
        if (holder.state === 'live' && !holder.busy) {
          holder.busy = true;
          try {
            await this.check(holder, rng, `after a late DEL of ${sb.containerId}`);
          } finally {
            holder.busy = false;
          }
        }
      }
    } finally {
      sb.busy = false;
    }
  }

  /** The live sandbox on this node holding `address`, if any. */
  private holderOf(address: string): Sandbox | undefined {
    return this.sandboxes.find((s) => s.state === 'live' && s.address === address);
  }

  /** CHECK of a live pod; a failure is a violation (a killed CHECK proves nothing, 11 is retried). */
  async check(sb: Sandbox, rng?: Rng, context = ''): Promise<void> {
    let r = await this.call('CHECK', sb, this.conf({ prevResult: sb.result }), rng && this.killPlan(rng));
    // "Try again later": ipamd died while running the call; the runtime asks again.
    for (let attempt = 1; r.cniCode === 11 && attempt < 10; attempt++) {
      await sleep(backoff(attempt));
      r = await this.call('CHECK', sb, this.conf({ prevResult: sb.result }));
    }
    if (r.killed) return;
    this.o.tally.inc('check pod');
    if (r.code !== 0) {
      this.o.tally.violate(
        'check-failed',
        `${sb.podName} ${sb.containerId} ${sb.address} on ${this.o.label}${context ? ` (${context})` : ''}: ${r.out}`,
      );
    }
  }

  /**
   * GC with every sandbox the runtime knows as valid; no other call runs meanwhile. Returns whether
   * it succeeded (it fails while ipamd is away; the runtime tries again at its next GC).
   */
  async gc(rng?: Rng): Promise<boolean> {
    return this.gate.exclusive(async () => {
      const valid = this.sandboxes
        .filter((s) => ['adding', 'live', 'deleting'].includes(s.state))
        .map((s) => ({ containerID: s.containerId, ifname: 'eth0' }));
      const doomed = this.forgotten();
      const r = await this.call(
        'GC',
        null,
        this.conf({ 'cni.dev/valid-attachments': valid }),
        rng && this.killPlan(rng),
        { gated: false },
      );
      const ok = r.code === 0 && !r.killed;
      for (const sb of doomed) {
        if (ok) {
          this.o.tally.inc('gc collected');
          this.retire(sb);
        }
      }
      if (!ok && !r.killed) {
        // ipamd away (11), or its refusal to release every attachment of the node at once (when
        // every pod it holds is one the runtime forgot): both leave the attachments for a later GC.
        const refusedAll = /refusing to release all/.test(r.out);
        this.o.tally.inc(`gc failed ${refusedAll ? 'refused-all' : `code-${r.cniCode ?? r.code}`}`);
        if (r.cniCode !== 11 && !refusedAll) {
          this.o.tally.violate('gc-failed', `GC on ${this.o.label}: ${r.out}`);
        }
      }
      return ok;
    });
  }

  /** Settling: GC until it succeeds (ipamd must be serving). */
  async gcUntilOk(): Promise<void> {
    for (let attempt = 1; attempt <= 20; attempt++) {
      if (await this.gc()) return;
      await sleep(backoff(attempt));
    }
    this.o.tally.violate('gc-never-succeeded', `GC on ${this.o.label}: 20 attempts`);
  }

  /** Settling: one pod started (GC refuses to release every attachment of a node at once). */
  async ensureLive(rng: Rng): Promise<void> {
    if (this.live().length === 0) await this.addPod(rng, true);
  }

  /** Settling: CHECK every live pod. */
  async checkAll(): Promise<void> {
    for (const sb of this.live()) await this.check(sb, undefined, 'settled');
  }

  /** Settling: every live pod deleted, at most `workers` at a time. */
  async deleteAll(rng: Rng): Promise<void> {
    const queue = this.live();
    const worker = async () => {
      for (let sb = queue.shift(); sb; sb = queue.shift()) {
        sb.busy = true;
        await this.deletePod(sb, rng);
      }
    };
    await Promise.all(Array.from({ length: this.o.workers }, worker));
  }

  /** Kills calls still running and deletes every namespace this runtime made (after a failure too). */
  async close(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    for (const sb of [...this.sandboxes, ...this.gone]) await this.removeNetns(sb).catch(() => {});
  }
}
