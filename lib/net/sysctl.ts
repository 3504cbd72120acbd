/**
 * Reading and writing sysctls, optionally inside another network namespace.
 *
 * How /proc/sys/net behaves (verified in test/integration/net/sysctl.test.ts): the kernel resolves
 * /proc/sys/net/* against the network namespace of the *task that opens the file* (not of whoever
 * mounted /proc, and not of the process's thread-group leader). So opening the file while the main
 * thread is switched with inNetns reads and writes that namespace's value, and an fd opened inside
 * keeps referring to it. Per-device keys (net/ipv4/conf/<dev>/...) exist only in the device's
 * namespace. /sys/class/net, by contrast, follows the netns of the sysfs *mount*, so it is not usable
 * this way (`ip netns exec` remounts /sys for that reason).
 *
 * Keys outside net/ are global to the machine, not per namespace: with an nsPath they are refused,
 * so a pod-scoped call can never change host-wide settings by accident.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { inNetns } from './netns.js';

const PROC_SYS = '/proc/sys';
const SEGMENT_RE = /^[A-Za-z0-9_.:@-]+$/;

export interface SysctlError extends Error {
  code?: string;
}

/**
 * Accepts sysctl(8) dotted form ("net.ipv4.ip_forward"; a '/' inside a dotted key stands for '.',
 * as in "net.ipv4.conf.eth0/100.rp_filter") or path form ("net/ipv4/conf/eth0.100/rp_filter").
 * Returns the path form.
 */
export function sysctlPath(key: string): string {
  if (typeof key !== 'string' || key === '') throw new TypeError('sysctl key must be a non-empty string');
  const dot = key.indexOf('.');
  const slash = key.indexOf('/');
  const dotted = dot >= 0 && (slash < 0 || dot < slash);
  const path = dotted ? key.replace(/[./]/g, (c) => (c === '.' ? '/' : '.')) : key;
  const segments = path.split('/');
  if (segments.some((s) => !SEGMENT_RE.test(s) || s === '.' || s === '..')) {
    throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}: expected e.g. "net.ipv4.ip_forward"`);
  }
  return segments.join('/');
}

function scoped<T>(op: string, path: string, nsPath: string | undefined, fn: () => T): T {
  if (nsPath !== undefined && !path.startsWith('net/')) {
    throw new TypeError(
      `${op} ${path}: only net.* keys are per network namespace; refusing to change it for ${nsPath}`,
    );
  }
  try {
    return nsPath === undefined ? fn() : inNetns(nsPath, fn);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (
      !code ||
      (err as Error).message.startsWith('open netns') ||
      (err as Error).message.startsWith('enter netns')
    ) {
      throw err;
    }
    const reason =
      code === 'ENOENT'
        ? 'no such key (or device) in this namespace'
        : code === 'EINVAL'
          ? 'value rejected by the kernel'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : (err as Error).message;
    const out: SysctlError = new Error(`${op} ${path}${nsPath ? ` in ${nsPath}` : ''}: ${reason} (${code})`, {
      cause: err,
    });
    out.code = code;
    throw out;
  }
}

/** Current value, trimmed (multi-value keys keep their inner tabs). */
export function readSysctl(key: string, nsPath?: string): string {
  const path = sysctlPath(key);
  return scoped('read sysctl', path, nsPath, () => readFileSync(`${PROC_SYS}/${path}`, 'utf8').trim());
}

/** Writes a value; the file is opened (and written) inside `nsPath` when given. */
export function writeSysctl(key: string, value: string | number, nsPath?: string): void {
  const path = sysctlPath(key);
  const text = String(value);
  if (/[\n\0]/.test(text)) throw new TypeError(`invalid value for sysctl ${path}: must be a single line`);
  scoped('write sysctl', path, nsPath, () => writeFileSync(`${PROC_SYS}/${path}`, text));
}
