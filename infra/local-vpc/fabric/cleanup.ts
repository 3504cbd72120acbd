/**
 * Removing a local VPC by its prefix: the processes inside its namespaces, then the namespaces
 * (which takes every veth with them). Works from nothing but the names, so it also clears what a
 * crashed run left behind. Reads /proc and /var/run/netns directly and deletes in one `ip` batch,
 * so tearing down a VPC of many instances costs one process, not two per namespace.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { NETNS_RUN_DIR } from '../../../lib/net/netns.js';
import { belongsToPrefix, validatePrefix } from './names.js';
import { runCommand } from './shell.js';

/** Names of all named network namespaces (what `ip netns list` shows). */
export async function listNetns(): Promise<string[]> {
  if (!existsSync(NETNS_RUN_DIR)) return [];
  return readdirSync(NETNS_RUN_DIR).sort();
}

/** The namespaces that belong to `prefix` right now. */
export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  validatePrefix(prefix);
  return (await listNetns()).filter((name) => belongsToPrefix(name, prefix));
}

function inodeOf(path: string): number | undefined {
  try {
    return Number(statSync(path, { bigint: true }).ino);
  } catch {
    return undefined;
  }
}

/**
 * PIDs of the processes whose network namespace is one of `names` (as `ip netns pids` finds them:
 * /proc/<pid>/ns/net and the bind-mounted namespace file are the same nsfs inode).
 */
export function pidsInNetns(names: readonly string[]): Map<string, number[]> {
  const byInode = new Map<number, string>();
  const result = new Map<string, number[]>();
  for (const name of names) {
    result.set(name, []);
    const ino = inodeOf(`${NETNS_RUN_DIR}/${name}`);
    if (ino !== undefined) byInode.set(ino, name);
  }
  if (byInode.size === 0) return result;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ino = inodeOf(`/proc/${entry}/ns/net`);
    const name = ino === undefined ? undefined : byInode.get(ino);
    if (name) result.get(name)!.push(Number(entry));
  }
  return result;
}

/** SIGKILLs the processes in the namespaces, never this one (an in-process VPC holds sockets there). */
export function killProcessesIn(names: readonly string[]): number {
  let killed = 0;
  for (const pids of pidsInNetns(names).values()) {
    for (const pid of pids) {
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // already gone
      }
    }
  }
  return killed;
}

/** Deletes namespaces in one `ip` batch; names already gone are fine, any left over is an error. */
export async function deleteNetns(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  // -force: carry on past a name that is already gone; what matters is what is left afterwards.
  const r = await runCommand(
    'ip',
    ['-force', '-batch', '-'],
    `${names.map((n) => `netns del ${n}`).join('\n')}\n`,
  );
  const left = new Set(await listNetns());
  const stuck = names.filter((n) => left.has(n));
  if (stuck.length > 0) {
    throw new Error(
      `could not delete namespaces ${stuck.join(', ')}: ${r.stderr.trim() || `exit code ${r.code}`}`,
    );
  }
}

export interface CleanupReport {
  namespaces: string[];
  processesKilled: number;
}

/** Removes every namespace of `prefix` and the processes inside them. Idempotent. */
export async function cleanupPrefix(prefix: string): Promise<CleanupReport> {
  const namespaces = await netnsWithPrefix(prefix);
  const processesKilled = killProcessesIn(namespaces);
  try {
    await deleteNetns(namespaces);
  } catch (err) {
    throw new Error(`cleanup of ${prefix} incomplete: ${(err as Error).message}`, { cause: err });
  }
  return { namespaces, processesKilled };
}
