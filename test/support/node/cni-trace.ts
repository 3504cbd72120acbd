/**
 * What containerd really hands the CNI plugins, observed from outside: strace follows containerd's
 * execve(2) calls while a test drives CRI, so a test can check the plugin order (loopback, then the
 * conflist's chain), CNI_COMMAND/CNI_NETNS and CNI_ARGS exactly as the runtime set them, without a
 * wrapper in the node's /opt/cni/bin changing what is tested.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from './host.js';

export interface PluginExec {
  /** The plugin binary (a node path, e.g. /opt/cni/bin/aws-cni). */
  path: string;
  env: Record<string, string>;
}

/** Reads strace's C-escaped string literal. */
function unescapeC(s: string): string {
  return s.replace(/\\(x[0-9a-f]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
    return ({ n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\' } as Record<string, string>)[e] ?? e;
  });
}

/** Whether every thread of `pid` is traced by `tracer` (strace attaches them one by one). */
function allThreadsTracedBy(pid: number, tracer: number | undefined): boolean {
  try {
    const tasks = readdirSync(`/proc/${pid}/task`);
    return tasks.every((t) => {
      const status = readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      return Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1] ?? 0) === tracer;
    });
  } catch {
    return false;
  }
}

/** Runs `fn` while strace records every program containerd (pid) executes; returns those under `binDir`. */
export async function traceExecs<T>(
  pid: number,
  binDir: string,
  fn: () => Promise<T>,
): Promise<{ result: T; execs: PluginExec[] }> {
  const out: string[] = [];
  const strace: ChildProcess = spawn(
    'strace',
    ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-s', '65536', '-v', '-p', String(pid)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  strace.stderr!.on('data', (d) => out.push(d.toString()));
  const exited = new Promise((r) => strace.once('close', r));
  try {
    for (let i = 0; !allThreadsTracedBy(pid, strace.pid); i++) {
      if (i > 100 || strace.exitCode !== null)
        throw new Error(`strace did not attach to ${pid}: ${out.join('')}`);
      await sleep(50);
    }
    const result = await fn();
    return { result, execs: parse(out.join(''), binDir) };
  } finally {
    strace.kill('SIGINT');
    await Promise.race([exited, sleep(5_000)]);
    if (strace.exitCode === null) strace.kill('SIGKILL');
  }
}

function parse(text: string, binDir: string): PluginExec[] {
  const execs: PluginExec[] = [];
  const line =
    /execve\("((?:[^"\\]|\\.)*)", \[(?:[^\]"]|"(?:[^"\\]|\\.)*")*\], \[((?:[^\]"]|"(?:[^"\\]|\\.)*")*)\]/g;
  for (const m of text.matchAll(line)) {
    const path = unescapeC(m[1]!);
    if (!path.startsWith(`${binDir}/`)) continue;
    const env: Record<string, string> = {};
    for (const s of m[2]!.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      const kv = unescapeC(s[1]!);
      const eq = kv.indexOf('=');
      if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    execs.push({ path, env });
  }
  return execs;
}
