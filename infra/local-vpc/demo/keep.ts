/**
 * `--keep`: the VPC, the ipamd processes and the emulators live inside one Node process, so keeping
 * them up means running the demo in a detached background process (`demo hold`) that stays alive
 * after the report. The foreground relays that process's log until it reports it is holding, then
 * exits; `demo down` stops the holder (which DELs the pods and destroys the VPC) and removes by
 * prefix whatever a crashed holder left behind.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cleanupPrefix } from '../fabric/cleanup.js';
import { validatePrefix } from '../fabric/names.js';
import type { Outcome } from './demo.js';

/** The line the holder prints once everything is up; the foreground stops relaying there. */
export const HOLDING_MARKER = 'demo: holding, exit code ';

export interface KeptRecord extends Outcome {
  name: string;
  pid: number;
  startedAt: string;
  exitCode: number;
}

export function demoStateDir(): string {
  return process.env['VPCCNI_DEMO_STATE_DIR'] || '/run/vpccni-demo';
}

export function recordPath(dir: string, name: string): string {
  return `${dir}/${name}.json`;
}

export function logPath(dir: string, name: string): string {
  return `${dir}/${name}.log`;
}

export function writeKept(dir: string, record: KeptRecord): void {
  mkdirSync(dir, { recursive: true });
  const path = recordPath(dir, record.name);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

export function readKept(dir: string, name: string): KeptRecord | undefined {
  const path = recordPath(dir, name);
  if (!existsSync(path)) return undefined;
  let r: Partial<KeptRecord>;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as Partial<KeptRecord>;
  } catch (err) {
    throw new Error(
      `${path} is not valid JSON (${(err as Error).message}); remove it and run local-vpc cleanup`,
    );
  }
  if (typeof r.pid !== 'number' || typeof r.prefix !== 'string') {
    throw new Error(`${path} lacks pid/prefix; remove it and run local-vpc cleanup`);
  }
  validatePrefix(r.prefix);
  return r as KeptRecord;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** How a person gets at a kept demo, printed by the holder. */
export function keptInstructions(r: KeptRecord): string {
  const pod = r.pods[0];
  const peer = r.pods[1];
  return [
    `\nKept running as "${r.name}" (pid ${r.pid}, namespaces ${r.prefix}-*):`,
    ...(pod && peer
      ? [`  try:   ip netns exec ${pod.netns} ping -c1 ${peer.address}      # ${pod.name} -> ${peer.name}`]
      : []),
    '  list:  ip netns list | grep ' + r.prefix,
    `  stop:  bash scripts/run.sh down${r.name === 'default' ? '' : ` --name ${r.name}`}`,
  ].join('\n');
}

/**
 * Starts `hold` detached with its output in the state directory, relays that output until the
 * holder prints the marker (returns its exit code) or dies (returns 1).
 */
export async function startHolder(
  script: string,
  holdArgs: string[],
  name: string,
  out: NodeJS.WritableStream,
  tty: boolean,
): Promise<number> {
  const dir = demoStateDir();
  const existing = readKept(dir, name);
  if (existing && isAlive(existing.pid)) {
    throw new Error(
      `a demo named "${name}" is already kept (pid ${existing.pid}); stop it with: bash scripts/run.sh down${name === 'default' ? '' : ` --name ${name}`}`,
    );
  }
  mkdirSync(dir, { recursive: true });
  const log = logPath(dir, name);
  rmSync(log, { force: true });
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [...process.execArgv, script, 'hold', ...holdArgs], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, VPCCNI_DEMO_TTY: tty ? '1' : '0' },
  });
  closeSync(fd);
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => {
    exited = code ?? 1;
  });
  // Ctrl-C while it builds: the holder tears everything down itself on SIGTERM.
  const forward = () => {
    if (child.pid && exited === null) process.kill(child.pid, 'SIGTERM');
  };
  process.once('SIGINT', forward);
  process.once('SIGTERM', forward);

  const reader = openSync(log, 'r');
  const buf = Buffer.alloc(64 * 1024);
  let pending = '';
  try {
    for (;;) {
      const n = readSync(reader, buf, 0, buf.length, null);
      if (n > 0) {
        pending += buf.subarray(0, n).toString('utf8');
        const at = pending.indexOf(HOLDING_MARKER);
        if (at >= 0) {
          out.write(pending.slice(0, at));
          const code = Number(pending.slice(at + HOLDING_MARKER.length).match(/^\d+/)?.[0] ?? 1);
          return code;
        }
        // Keep a possible partial marker back; relay the rest as it comes.
        const safe = Math.max(0, pending.length - HOLDING_MARKER.length);
        out.write(pending.slice(0, safe));
        pending = pending.slice(safe);
        continue;
      }
      if (exited !== null) {
        out.write(pending);
        return exited === 0 ? 1 : exited;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    closeSync(reader);
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/** Stops a kept demo: SIGTERM its holder, wait for its own teardown, then sweep the prefix. */
export async function down(name: string, out: NodeJS.WritableStream): Promise<number> {
  const dir = demoStateDir();
  const record = readKept(dir, name);
  if (!record) {
    out.write(`no kept demo named "${name}" (nothing recorded in ${dir})\n`);
    return 1;
  }
  if (isAlive(record.pid)) {
    process.kill(record.pid, 'SIGTERM');
    const deadline = Date.now() + 60_000;
    while (isAlive(record.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(record.pid)) process.kill(record.pid, 'SIGKILL');
  }
  const swept = await cleanupPrefix(record.prefix);
  rmSync(record.workDir, { recursive: true, force: true });
  rmSync(recordPath(dir, name), { force: true });
  rmSync(logPath(dir, name), { force: true });
  out.write(
    `demo "${name}" is down (${record.prefix}${swept.namespaces.length ? `; removed ${swept.namespaces.length} leftover namespaces` : ''})\n`,
  );
  return 0;
}
