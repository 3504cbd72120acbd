/**
 * A "node" for one local-VPC instance: the instance's network namespace plus a mount namespace that
 * stands for the node's own filesystem. A holder process (`unshare --mount --propagation private`,
 * inside the instance's netns) mounts per-test directories over the paths a kubelet node keeps its
 * state in (/run, /etc/cni/net.d, /opt/cni/bin, /opt/vpc-cni, /var/lib/cni, ...), then makes its
 * tree shared as systemd does on a real node. Everything of the node (containerd, runc, ipamd's
 * container, the CNI plugins) is entered with nsenter into both namespaces, so netns bind mounts
 * containerd creates live in that mount namespace only, nothing on the real host changes, and two
 * nodes run side by side. Paths missing on the host get a mount point through an overlay of their
 * nearest existing ancestor (the overlay's upper directory is the test's too).
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Node paths that get a directory of their own per node (beside /run, which is bound first). */
export const NODE_DIRS = [
  '/etc/cni/net.d',
  '/opt/cni/bin',
  '/opt/vpc-cni',
  '/var/lib/cni',
  '/var/lib/containerd',
  '/var/log/aws-routed-eni',
  '/etc/vpc-cni',
] as const;

export interface NodeHostOptions {
  /** Directory holding the node's filesystem; removed by destroy(). */
  dir: string;
  /** The instance's network namespace (`ip netns` name), e.g. instance.netns. */
  netns: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The mount-setup script the holder runs before it reports ready. */
function setupScript(dir: string, netns: string, cgroupRoot: string): string {
  const lines = ['set -eu'];
  // /run first (a real node's /run is its own tmpfs): containerd's state, /run/netns, the xtables lock.
  lines.push(`mount --bind ${q(join(dir, 'run'))} /run`);
  // The instance's namespace under its usual name, so /var/run/netns/<name> means the same in the node.
  lines.push(
    'mkdir -p /run/netns',
    `: > /run/netns/${netns}`,
    `mount --bind /proc/self/ns/net /run/netns/${netns}`,
  );
  const overlaid = new Set<string>();
  for (const path of NODE_DIRS) {
    if (!existsSync(path)) {
      let anchor = dirname(path);
      while (!existsSync(anchor)) anchor = dirname(anchor);
      if (![...overlaid].some((o) => anchor === o || anchor.startsWith(`${o}/`))) {
        const o = join(dir, 'overlay', anchor.replace(/\//g, '_'));
        mkdirSync(join(o, 'upper'), { recursive: true });
        mkdirSync(join(o, 'work'), { recursive: true });
        lines.push(
          `mount -t overlay overlay -o ${q(`lowerdir=${anchor},upperdir=${o}/upper,workdir=${o}/work`)} ${anchor}`,
        );
        overlaid.add(anchor);
      }
      lines.push(`mkdir -p ${path}`);
    }
    lines.push(`mount --bind ${q(join(dir, 'fs', path))} ${path}`);
  }
  // As systemd leaves a real node: every mount shared (peer groups local to this namespace), which
  // is what mountPropagation HostToContainer/Bidirectional build on.
  lines.push('mount --make-rshared /', 'echo ready', 'read _ || true');
  // Dead man's switch: stdin closes when the test process ends, however it ends. Whatever still runs
  // in this mount namespace or the node's cgroups is killed by PID, so the namespace (and every mount
  // in it) goes away even when destroy() never ran.
  lines.push(
    'set +e',
    'me=$(readlink /proc/$$/ns/mnt)',
    'for p in /proc/[0-9]*; do',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    '  pid=${p#/proc/}',
    '  [ "$pid" = "$$" ] && continue',
    '  [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$me" ] && kill -9 "$pid" 2>/dev/null',
    'done',
    `for f in $(find /sys/fs/cgroup/*${cgroupRoot} -name cgroup.procs 2>/dev/null); do`,
    '  for pid in $(cat "$f"); do kill -9 "$pid" 2>/dev/null; done',
    'done',
    'exit 0',
  );
  return lines.join('\n');
}

export class NodeHost {
  readonly dir: string;
  readonly netns: string;
  /** cgroupfs parent of everything the node runs (the kubelet's /kubepods, ipamd's container). */
  readonly cgroupRoot: string;
  private holder: ChildProcess | undefined;
  private readonly children = new Set<ChildProcess>();

  private constructor(opts: NodeHostOptions) {
    this.dir = opts.dir;
    this.netns = opts.netns;
    // Named after the test directory (/tmp/vpccni-<run>/n1 -> /vpccni-<run>-n1) so clean-up finds it.
    const name = basename(opts.dir).startsWith('vpccni-')
      ? basename(opts.dir)
      : `${basename(dirname(opts.dir))}-${basename(opts.dir)}`;
    if (!name.startsWith('vpccni-'))
      throw new Error(`node directory ${opts.dir} must be under a vpccni-<runid> directory`);
    this.cgroupRoot = `/${name}`;
  }

  /** Creates the node's mount namespace inside the instance's network namespace. */
  static async create(opts: NodeHostOptions): Promise<NodeHost> {
    const host = new NodeHost(opts);
    mkdirSync(join(opts.dir, 'run'), { recursive: true });
    for (const p of NODE_DIRS) mkdirSync(join(opts.dir, 'fs', p), { recursive: true });
    const script = setupScript(opts.dir, opts.netns, host.cgroupRoot);
    writeFileSync(join(opts.dir, 'node-setup.sh'), `${script}\n`);
    const holder = spawn(
      'nsenter',
      [
        `--net=/run/netns/${opts.netns}`,
        '--',
        'unshare',
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        script,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    host.holder = holder;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      holder.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('ready\n')) resolve();
      });
      holder.stderr!.on('data', (d) => {
        err += d;
      });
      holder.on('error', reject);
      holder.on('exit', (code) => reject(new Error(`node mount setup failed (${code}): ${err.trim()}`)));
    });
    return host;
  }

  get pid(): number {
    const pid = this.holder?.pid;
    if (!pid) throw new Error('node holder is not running');
    return pid;
  }

  /** The node's mount namespace as a file any process can open. */
  get mountNs(): string {
    return `/proc/${this.pid}/ns/mnt`;
  }

  get netnsPath(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  /** Where a node path (e.g. /etc/cni/net.d/10-aws.conflist) is, seen from the test's own filesystem. */
  path(nodePath: string): string {
    if (nodePath === '/run' || nodePath.startsWith('/run/')) return join(this.dir, nodePath);
    if (nodePath.startsWith('/var/run/')) return join(this.dir, nodePath.slice(4));
    const base = NODE_DIRS.find((d) => nodePath === d || nodePath.startsWith(`${d}/`));
    if (!base) throw new Error(`${nodePath} is not one of the node's own paths`);
    return join(this.dir, 'fs', nodePath);
  }

  /** argv prefix that runs a command inside the node (its mount and network namespaces). */
  enter(): string[] {
    return ['nsenter', `--mount=${this.mountNs}`, `--net=${this.netnsPath}`, '--'];
  }

  /** Starts a process in the node; destroy() kills it (by PID) if it is still running. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const [nsenter, ...pre] = this.enter();
    const child = spawn(nsenter!, [...pre, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs a command in the node to completion (without blocking the event loop). */
  run(
    cmd: string,
    args: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ) {
    return new Promise<RunResult>((resolve, reject) => {
      const child = this.spawn(cmd, args, {
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: opts.env ?? process.env,
      });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      child.stdout!.on('data', (d) => {
        stdout += d;
      });
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
      });
      if (child.stdin) {
        // The command may exit without reading its input.
        child.stdin.on('error', () => undefined);
        child.stdin.end(opts.input);
      }
    });
  }

  /** Like run() but throws with the output when the command fails. */
  async exec(
    cmd: string,
    args: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ) {
    const r = await this.run(cmd, args, opts);
    if (r.code !== 0)
      throw new Error(
        `${cmd} ${args.join(' ')} (in node ${this.netns}) exited ${r.code}: ${r.stderr || r.stdout}`,
      );
    return r.stdout;
  }

  /** PIDs of every process whose mount namespace is this node's (containerd, shims, runc, ...). */
  processes(): number[] {
    let ns: string;
    try {
      ns = readlinkSync(this.mountNs);
    } catch {
      return [];
    }
    const out: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === this.pid) continue;
      try {
        if (readlinkSync(`/proc/${entry}/ns/mnt`) === ns) out.push(Number(entry));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** PIDs of every process in the node's cgroups (containers: pods' sandboxes, ipamd's container). */
  cgroupProcesses(): number[] {
    const pids = new Set<number>();
    for (const mount of cgroupMounts()) {
      const top = join(mount, this.cgroupRoot);
      if (!existsSync(top)) continue;
      const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(join(d, e.name));
          else if (e.name === 'cgroup.procs')
            for (const p of readFileSync(join(d, e.name), 'utf8').split('\n')) if (p) pids.add(Number(p));
        }
      };
      try {
        walk(top);
      } catch {
        // removed meanwhile
      }
    }
    return [...pids];
  }

  /**
   * Kills every process still in the node by PID (SIGKILL): those in its mount namespace (containerd,
   * shims, runc) and those in its cgroups (containers, which have mount namespaces of their own); ends the holder and removes the node's
   * directory once the mount namespace (and every mount in it) is gone. Safe to call twice.
   */
  async destroy(): Promise<void> {
    for (const child of this.children) if (child.pid && child.exitCode === null) kill(child.pid);
    const holder = this.holder;
    if (holder?.pid && holder.exitCode === null) {
      for (let i = 0; i < 50; i++) {
        const left = [...this.processes(), ...this.cgroupProcesses()];
        if (left.length === 0) break;
        for (const pid of left) kill(pid);
        await sleep(100);
      }
      const exited = new Promise((r) => holder.once('exit', r));
      holder.stdin?.end();
      await Promise.race([exited, sleep(5_000)]);
      if (holder.exitCode === null) kill(holder.pid);
    }
    this.holder = undefined;
    removeCgroups(this.cgroupRoot);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A short description of the node's mounts, for debugging a failed test. */
  mounts(): string {
    try {
      return sh('cat', [`/proc/${this.pid}/mountinfo`]);
    } catch {
      return '';
    }
  }
}

/** Every mounted cgroup hierarchy (v1 controllers and the v2 tree). */
function cgroupMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => / - cgroup2? /.test(l))
    .map((l) => l.split(' ')[4]!);
}

/** rmdir of a cgroup subtree, deepest first (cgroup directories cannot be removed recursively). */
export function removeCgroups(root: string): void {
  if (!/^\/vpccni-[A-Za-z0-9-]+$/.test(root)) throw new Error(`refusing to remove cgroup ${root}`);
  for (const mount of cgroupMounts()) {
    const top = join(mount, root);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    };
    walk(top);
    for (const d of dirs.reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // still has a process: it was killed above and goes away with it
      }
    }
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
