/**
 * Fixtures for the plugin's integration tests: uniquely named namespaces (a stand-in "node" and its
 * pods), the built plugin exec'd the way a runtime does (env + stdin, inside the node namespace),
 * and readers of the resulting kernel state through `ip -j`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');
export const PLUGIN = resolve(REPO, 'dist/aws-cni.mjs');

export function runId(): string {
  return process.pid.toString(36) + Math.random().toString(36).slice(2, 6);
}

export function requireBuilt(): void {
  if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing; run "npm run build" first`);
}

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export class Netns {
  readonly path: string;
  private constructor(readonly name: string) {
    this.path = `/var/run/netns/${name}`;
  }

  static create(name: string): Netns {
    if (!name.startsWith('vpccni-')) throw new Error(`namespace ${name} must start with vpccni-`);
    sh('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  ip(...args: string[]): string {
    return sh('ip', ['-n', this.name, ...args]);
  }

  /** `ip -j` output parsed. */
  json<T = Record<string, unknown>[]>(...args: string[]): T {
    const out = sh('ip', ['-j', '-n', this.name, ...args]).trim();
    return (out ? JSON.parse(out) : []) as T;
  }

  exec(cmd: string, args: string[], input?: string): string {
    return sh('ip', ['netns', 'exec', this.name, cmd, ...args], input);
  }

  /**
   * Runs a command in the namespace without blocking the event loop (needed when the other end, such
   * as the local VPC's internet echo server, is served by this very process).
   */
  run(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string }> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let stdout = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolvePromise({ code: code ?? -1, stdout });
      });
    });
  }

  /** Exit status of a command in the namespace (0 = success). */
  status(cmd: string, args: string[]): number {
    try {
      execFileSync('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: 'ignore', timeout: 10_000 });
      return 0;
    } catch (err) {
      return (err as { status?: number }).status ?? -1;
    }
  }

  delete(): void {
    try {
      sh('ip', ['netns', 'delete', this.name]);
    } catch {
      // already gone
    }
  }

  linkNames(): string[] {
    return this.json<{ ifname: string }[]>('link', 'show').map((l) => l.ifname);
  }

  rules(): {
    priority: number;
    src?: string;
    dst?: string;
    table: string;
    srclen?: number;
    dstlen?: number;
  }[] {
    return this.json('rule', 'show');
  }
}

/** The environment a runtime gives the plugin for one Kubernetes pod (eth0, the pod's CNI_ARGS). */
export function podCniEnv(
  command: string,
  pod: { name: string; containerId: string; ns?: Netns },
): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: pod.ns?.path ?? '',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.name}`,
  };
}

/** A plugin run as the tests read it: exit code, stdout parsed when there is one, everything printed. */
export function pluginReply(r: { code: number; stdout: string; stderr: string }) {
  const json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  return { code: r.code, json, raw: r.stdout + r.stderr };
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  path?: string;
  /** Object (JSON-encoded) or raw stdin text. */
  conf?: Record<string, unknown> | string;
  /** Extra or overriding environment; `undefined` values remove a variable. */
  env?: Record<string, string | undefined>;
  /** The namespace the plugin runs in (the "node"). */
  node: Netns;
  /** Executable to run; default the built plugin through node. */
  plugin?: string;
}

export interface CniOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, unknown> | undefined;
  ms: number;
}

/** Runs one plugin call as a runtime would: env, config on stdin, answer on stdout. */
export function cni(call: CniCall): Promise<CniOutcome> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const base: Record<string, string | undefined> = {
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName,
    CNI_ARGS: call.args,
    CNI_PATH: call.path ?? '/usr/lib/cni',
    ...call.env,
  };
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  const input = typeof call.conf === 'string' ? call.conf : JSON.stringify(call.conf ?? {});
  const argv = call.plugin ? [call.plugin] : [process.execPath, PLUGIN];
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn('ip', ['netns', 'exec', call.node.name, ...argv], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        json = undefined;
      }
      resolvePromise({ exitCode: code ?? -1, stdout, stderr, json, ms: performance.now() - started });
    });
    child.stdin.end(input);
  });
}
