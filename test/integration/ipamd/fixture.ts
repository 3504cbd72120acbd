/**
 * Fixtures for ipamd scenarios: a local VPC, an instance, the real dist/ipamd.mjs inside it, and a tiny
 * NDJSON client for its socket (Unix sockets live in the filesystem, so the test reaches it from the
 * root namespace). Every process is killed by PID and every VPC destroyed in `close()`.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type CreateVpcOptions,
  createVpc,
  type Instance,
  type LocalVpc,
} from '../../../infra/local-vpc/index.js';
import { IPAMD_NODE_FLAGS } from '../../../ipamd/node-flags.js';

export const IPAMD_BUNDLE = resolve('dist/ipamd.mjs');

export function bundleMissing(): string | null {
  return existsSync(IPAMD_BUNDLE) ? null : `${IPAMD_BUNDLE} missing: run npm run build`;
}

export interface Reply {
  v: number;
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

/** Sends one raw line, reads one reply line. */
export function rawRequest(socketPath: string, line: string, timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const sock = connect(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no reply from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(line.endsWith('\n') ? line : `${line}\n`));
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.destroy();
        resolvePromise(JSON.parse(buf.slice(0, nl)) as Reply);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export class Ipamd {
  readonly logs: string[] = [];
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  constructor(
    readonly proc: ChildProcess,
    readonly dir: string,
    readonly socketPath: string,
    readonly checkpointPath: string,
    /** Whether the daemon logs at info or below, i.e. writes its 'ipamd serving' line. */
    private readonly logsInfo = true,
  ) {
    // A log line can arrive split over two chunks: keep the unfinished tail until its newline.
    const collect = (stream: NodeJS.ReadableStream | null) => {
      let rest = '';
      stream?.on('data', (d: Buffer) => {
        const lines = (rest + d.toString()).split('\n');
        rest = lines.pop() ?? '';
        this.logs.push(...lines.filter(Boolean));
      });
      stream?.on('end', () => rest && this.logs.push(rest));
    };
    collect(proc.stderr);
    collect(proc.stdout);
    // 'close', not 'exit': by then every line the process wrote has been read.
    this.exited = new Promise((r) =>
      proc.on('close', (code) => {
        this.exitCode = code;
        r(code);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Parsed JSON log lines. */
  events(): Record<string, unknown>[] {
    return this.logs.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }

  async waitServing(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running)
        throw new Error(`ipamd exited (${this.exitCode}):\n${this.logs.slice(-20).join('\n')}`);
      if (existsSync(this.socketPath)) {
        const health = await this.request({ op: 'health' }).catch(() => null);
        // Ready, and its 'ipamd serving' line read: every startup log line before it is in this.logs.
        if (
          health?.ok &&
          health.result?.ready === true &&
          (!this.logsInfo || this.events().some((e) => e.msg === 'ipamd serving'))
        )
          return;
      }
      await sleep(100);
    }
    throw new Error(`ipamd not serving after ${timeoutMs} ms:\n${this.logs.slice(-20).join('\n')}`);
  }

  request(req: Record<string, unknown>): Promise<Reply> {
    return rawRequest(this.socketPath, JSON.stringify({ v: 1, ...req }));
  }

  add(containerId: string, extra: Record<string, unknown> = {}): Promise<Reply> {
    return this.request({
      op: 'add',
      network: 'aws-cni',
      containerId,
      ifName: 'eth0',
      netns: '/proc/self/ns/net',
      podNamespace: 'default',
      podName: containerId,
      ...extra,
    });
  }

  /**
   * add() as a container runtime does it: "try again later" (pool_empty, not_ready: CNI code 11) is
   * retried, so a test adding faster than ENIs attach still sees only final answers.
   */
  async addAsRuntime(containerId: string, timeoutMs = 20_000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.add(containerId);
      const retryable = !r.ok && (r.error?.code === 'pool_empty' || r.error?.code === 'not_ready');
      if (!retryable || Date.now() > deadline) return r;
      await sleep(200);
    }
  }

  del(containerId: string): Promise<Reply> {
    return this.request({ op: 'del', network: 'aws-cni', containerId, ifName: 'eth0' });
  }

  checkpoint(): { allocations: { containerId: string; address: string }[] } {
    return JSON.parse(readFileSync(this.checkpointPath, 'utf8'));
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.running && this.proc.pid) process.kill(this.proc.pid, signal);
    return this.exited;
  }
}

export class Scenario {
  readonly dirs: string[] = [];
  readonly daemons: Ipamd[] = [];
  constructor(readonly vpc: LocalVpc) {}

  static async create(opts: CreateVpcOptions = {}): Promise<Scenario> {
    return new Scenario(await createVpc(opts));
  }

  launch(instanceType: string, opts: { subnet?: string | number } = {}): Promise<Instance> {
    return this.vpc.launchInstance({ instanceType, ...opts });
  }

  /** Starts dist/ipamd.mjs inside the instance; `dir` reuses a previous run's state (restart). */
  startIpamd(node: Instance, env: Record<string, string> = {}, dir?: string, bundle = IPAMD_BUNDLE): Ipamd {
    const d = dir ?? mkdtempSync(join(tmpdir(), 'ipamd-it-'));
    if (!dir) this.dirs.push(d);
    const socketPath = join(d, 'ipamd.sock');
    const checkpointPath = join(d, 'ipam.json');
    const nodeArgs = process.env.IPAMD_TEST_NODE_FLAGS?.split(' ').filter(Boolean) ?? IPAMD_NODE_FLAGS;
    const proc = this.vpc.runIn(node, process.execPath, [...nodeArgs, bundle], {
      env: {
        PATH: process.env.PATH,
        AWS_ACCESS_KEY_ID: `AKID${node.id}`,
        AWS_SECRET_ACCESS_KEY: 'local',
        AWS_REGION: 'us-west-2',
        AWS_EC2_ENDPOINT: node.ec2Endpoint,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: node.imdsEndpoint,
        IPAMD_SOCKET_PATH: socketPath,
        IPAMD_CHECKPOINT_PATH: checkpointPath,
        CNI_CONF_DIR: join(d, 'net.d'),
        IPAMD_POOL_CHECK_INTERVAL_SECONDS: '0.5',
        AWS_VPC_K8S_CNI_LOGLEVEL: 'debug',
        // The test reads the log from stderr; plugin logs stay in the run's directory.
        AWS_VPC_K8S_CNI_LOG_FILE: 'stderr',
        AWS_VPC_K8S_PLUGIN_LOG_FILE: join(d, 'log', 'plugin.log'),
        IPAMD_PLUGIN_LOG_DIR: join(d, 'log'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const level = env.AWS_VPC_K8S_CNI_LOGLEVEL ?? 'debug';
    const daemon = new Ipamd(proc, d, socketPath, checkpointPath, ['trace', 'debug', 'info'].includes(level));
    this.daemons.push(daemon);
    return daemon;
  }

  /** ENIs EC2 has attached to the instance, with their addresses. */
  enisOf(node: Instance) {
    return this.vpc.state.enisOfInstance(node.id);
  }

  /** Secondary addresses (IP mode) of every ENI of the instance. */
  secondaryIpCount(node: Instance): number {
    return this.enisOf(node).reduce((n, e) => n + e.privateIps.filter((p) => !p.primary).length, 0);
  }

  async close(): Promise<void> {
    for (const d of this.daemons) await d.kill('SIGKILL').catch(() => undefined);
    await this.vpc.destroy();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until fn returns a truthy value. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}
