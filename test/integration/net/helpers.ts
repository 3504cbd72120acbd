// Fixtures for lib/net integration tests: named namespaces unique to this run, and `ip -j` readers
// that give an independent view of what the code under test did.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const runId = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

/** Tracks the namespaces a test file created so afterAll deletes exactly those. */
export class NetnsFixture {
  readonly names: string[] = [];

  add(suffix: string): string {
    const name = `vpccni-${runId}-${suffix}`;
    execFileSync('ip', ['netns', 'add', name]);
    this.names.push(name);
    return name;
  }

  cleanup(): void {
    for (const name of this.names.splice(0)) {
      try {
        execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}

/** `ip -n <ns> -j <args...>` parsed; `ip` prints nothing for empty lists. */
export function ipJson<T = Record<string, unknown>>(ns: string, ...args: string[]): T[] {
  const out = execFileSync('ip', ['-n', ns, '-j', ...args], { encoding: 'utf8' }).trim();
  return out === '' ? [] : (JSON.parse(out) as T[]);
}

export function ip(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
}

export function readSysctlIn(ns: string, key: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', key], { encoding: 'utf8' }).trim();
}

/** Interface names in a namespace, per `ip link show`. */
export function linkNames(ns: string): string[] {
  return ipJson<{ ifname: string }>(ns, 'link', 'show').map((l) => l.ifname);
}
