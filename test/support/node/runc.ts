/**
 * One container run by runc inside a node, the way containerd's shim runs it: a bundle with the
 * spec, `runc run` in the node's namespaces (its own runc state under the node's /run/runc), the
 * container's stdout/stderr collected line by line, exec'd processes (probes) with the container's
 * own process settings, and kill/restart as the kubelet does them. The node's clean-up kills the
 * container by cgroup if a test leaves it running.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { NodeHost, RunResult } from './host.js';
import type { OciSpec } from './oci.js';

const RUNC_ROOT = '/run/runc';

/** What tests use of a running ipamd, whether it runs under runc or (to debug the harness) not. */
export interface IpamdProcess {
  readonly logs: string[];
  readonly running: boolean;
  readonly starts: number;
  start(): void;
  wait(): Promise<number>;
  kill(signal: NodeJS.Signals): Promise<void>;
  exec(args: string[], timeoutMs?: number): Promise<RunResult>;
  stop(): Promise<void>;
}

/** A shell's view of how a process ended: its code, or 128 + the signal that killed it. */
function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return signal ? 128 + (osConstants.signals[signal] ?? 0) : -1;
}

function collectLines(stream: NodeJS.ReadableStream | null, into: string[]): void {
  let rest = '';
  stream?.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop() ?? '';
    into.push(...lines.filter(Boolean));
  });
  stream?.on('end', () => {
    if (rest) into.push(rest);
  });
}

export class RuncContainer implements IpamdProcess {
  readonly logs: string[] = [];
  private proc: ChildProcess | undefined;
  private exited: Promise<number> | undefined;
  private runs = 0;

  constructor(
    readonly node: NodeHost,
    readonly id: string,
    readonly bundle: string,
    readonly spec: OciSpec,
  ) {}

  /** Starts the container (runc run, foreground); a second start() after it exited is a restart. */
  start(): void {
    if (this.running) throw new Error(`${this.id} is already running`);
    mkdirSync(this.bundle, { recursive: true });
    writeFileSync(join(this.bundle, 'config.json'), JSON.stringify(this.spec, null, 2));
    this.runs++;
    const proc = this.node.spawn('runc', ['--root', RUNC_ROOT, 'run', '--bundle', this.bundle, this.id]);
    this.proc = proc;
    collectLines(proc.stdout, this.logs);
    collectLines(proc.stderr, this.logs);
    this.exited = new Promise((resolve) =>
      proc.on('close', (code, signal) => resolve(exitStatus(code, signal))),
    );
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** How many times the container was started (1 + restarts). */
  get starts(): number {
    return this.runs;
  }

  /** Resolves with runc's exit code (the container's: 137 after SIGKILL) once the container is gone. */
  wait(): Promise<number> {
    if (!this.exited) throw new Error(`${this.id} was never started`);
    return this.exited;
  }

  /** The container's init process as the host sees it. */
  async pid(): Promise<number> {
    const out = await this.node.exec('runc', ['--root', RUNC_ROOT, 'state', this.id]);
    return (JSON.parse(out) as { pid: number }).pid;
  }

  /** Sends a signal to the container's init process (what `kill -9 <pid>` on the node does). */
  async kill(signal: NodeJS.Signals): Promise<void> {
    process.kill(await this.pid(), signal);
  }

  /** Runs a process in the container with its own user, capabilities and environment (an exec probe). */
  async exec(args: string[], timeoutMs = 10_000): Promise<RunResult> {
    const spec = { ...this.spec.process, args };
    const file = join(this.bundle, `exec-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.json`);
    writeFileSync(file, JSON.stringify(spec));
    return this.node.run('runc', ['--root', RUNC_ROOT, 'exec', '--process', file, this.id], { timeoutMs });
  }

  /** Stops the container (SIGKILL) if it runs, and waits until runc removed it. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.kill('SIGKILL').catch(() => undefined);
    await this.wait();
  }
}

/**
 * The same process WITHOUT its container: full root in the node's own mount namespace, with the
 * container spec's arguments and environment (image paths mapped into the rootfs). Only for
 * debugging the harness (KubeletNodeOptions.ipamd = 'node-root'); it is not how anything ships.
 */
export class NodeRootProcess implements IpamdProcess {
  readonly logs: string[] = [];
  private proc: ChildProcess | undefined;
  private exited: Promise<number> | undefined;
  private runs = 0;

  constructor(
    readonly node: NodeHost,
    readonly spec: OciSpec,
  ) {}

  private argv(args: string[]): string[] {
    const root = this.spec.root.path;
    return args.map((a) =>
      a === '/opt/vpc-cni/bin/node'
        ? join(root, 'usr/local/bin/node')
        : a.startsWith('/opt/vpc-cni/')
          ? join(root, a)
          : a,
    );
  }

  private env(): NodeJS.ProcessEnv {
    return Object.fromEntries(
      this.spec.process.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
    );
  }

  start(): void {
    this.runs++;
    const [cmd, ...args] = this.argv(this.spec.process.args);
    const proc = this.node.spawn(cmd!, args, { env: this.env() });
    this.proc = proc;
    collectLines(proc.stdout, this.logs);
    collectLines(proc.stderr, this.logs);
    this.exited = new Promise((resolve) =>
      proc.on('close', (code, signal) => resolve(exitStatus(code, signal))),
    );
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get starts(): number {
    return this.runs;
  }

  wait(): Promise<number> {
    if (!this.exited) throw new Error('never started');
    return this.exited;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.proc?.pid) process.kill(this.proc.pid, signal);
  }

  exec(args: string[], timeoutMs = 10_000): Promise<RunResult> {
    const [cmd, ...rest] = this.argv(args);
    return this.node.run(cmd!, rest, { env: this.env(), timeoutMs });
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    await this.kill('SIGKILL');
    await this.wait();
  }
}
