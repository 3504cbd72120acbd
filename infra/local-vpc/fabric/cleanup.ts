/**
 * Removing a local VPC by its prefix: the processes inside its namespaces, then the namespaces
 * (which takes every veth with them). Works from nothing but the names, so it also clears what a
 * crashed run left behind.
 */
import { belongsToPrefix, validatePrefix } from './names.js';
import { mustRun, runCommand } from './shell.js';

/** Names of all named network namespaces (`ip netns list` prints "name (id: N)" or "name"). */
export async function listNetns(): Promise<string[]> {
  const out = await mustRun('ip', ['netns', 'list']);
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((name) => name !== '');
}

/** The namespaces that belong to `prefix` right now. */
export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  validatePrefix(prefix);
  return (await listNetns()).filter((name) => belongsToPrefix(name, prefix));
}

/** PIDs of processes whose network namespace is `ns`. */
export async function pidsInNetns(ns: string): Promise<number[]> {
  const r = await runCommand('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/** SIGKILLs the processes in `ns` except this one (an in-process VPC holds sockets there, not a pid). */
export async function killProcessesIn(ns: string): Promise<number> {
  let killed = 0;
  for (const pid of await pidsInNetns(ns)) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // already gone
    }
  }
  return killed;
}

/** Deletes one namespace; a namespace that is already gone is not an error. */
export async function deleteNetns(ns: string): Promise<void> {
  const r = await runCommand('ip', ['netns', 'delete', ns]);
  if (r.code !== 0 && !/No such file|not found|Invalid argument/i.test(r.stderr)) {
    throw new Error(`ip netns delete ${ns} failed: ${r.stderr.trim()}`);
  }
}

export interface CleanupReport {
  namespaces: string[];
  processesKilled: number;
}

/** Removes every namespace of `prefix` and the processes inside them. Idempotent. */
export async function cleanupPrefix(prefix: string): Promise<CleanupReport> {
  const namespaces = await netnsWithPrefix(prefix);
  let processesKilled = 0;
  for (const ns of namespaces) processesKilled += await killProcessesIn(ns);
  const errors: string[] = [];
  for (const ns of namespaces) {
    try {
      await deleteNetns(ns);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) throw new Error(`cleanup of ${prefix} incomplete:\n  ${errors.join('\n  ')}`);
  return { namespaces, processesKilled };
}
