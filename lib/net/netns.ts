/**
 * Running code inside another network namespace, via setns(2) from the native addon (lib/net/sys.ts).
 *
 * Why `inNetns` only takes synchronous functions: setns(2) switches the *calling thread*, and all
 * JavaScript runs on Node's main thread. While switched, everything the main thread does happens in
 * the target namespace; then we switch straight back. A socket (netlink, TCP, ...) created inside
 * keeps belonging to the namespace it was created in for its whole life, so "create the socket
 * inside, use it outside" is the pattern. An async function would be a trap: its continuations run
 * later, after we switched back (wrong namespace), and while it is pending other callbacks could run
 * in the target namespace. So a function that returns a Promise is refused.
 *
 * libuv's thread pool (fs.readFile, dns.lookup, ...) never switches; only synchronous calls made by
 * `fn` itself (fs.*Sync, socket creation, /proc/sys opened by this thread) see the target namespace.
 * Use /proc/thread-self/net rather than /proc/self/net (= /proc/net) inside: /proc/self is the
 * thread-group leader, which differs from the calling thread in a worker_thread.
 */
import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs';
import { sys } from './sys.js';

/** CLONE_NEWNET from <sched.h>: makes setns refuse an fd that is not a network namespace. */
export const CLONE_NEWNET = 0x40000000;

/** Where `ip netns add <name>` bind-mounts named namespaces. */
export const NETNS_RUN_DIR = '/var/run/netns';

/** The network namespace of the calling (main) thread. /proc/self would be the thread group leader. */
const CURRENT_NETNS = '/proc/thread-self/ns/net';

/** Set when switching back failed: the process is stranded in a foreign namespace. */
let stranded: string | undefined;

/** Raw setns(2) on an open fd; throws an Error with `.code` (EBADF, EINVAL, EPERM, ...). */
export function setns(fd: number, nstype: number = CLONE_NEWNET): void {
  sys().setns(fd, nstype);
}

const NAME_RE = /^[A-Za-z0-9_.-]{1,255}$/;

/** Path of a named namespace (`ip netns add <name>`), validating the name. */
export function netnsPath(name: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name === '.' || name === '..') {
    throw new TypeError(
      `invalid network namespace name ${JSON.stringify(name)}: use 1-255 letters, digits, '.', '_' or '-'`,
    );
  }
  return `${NETNS_RUN_DIR}/${name}`;
}

export interface NetnsError extends Error {
  code?: string;
}

function wrapError(what: string, err: unknown): NetnsError {
  const e = err as NodeJS.ErrnoException;
  const code = e.code ?? 'EUNKNOWN';
  let reason = e.message;
  if (code === 'ENOENT') reason = 'no such namespace (ENOENT)';
  else if (code === 'EINVAL') reason = 'not a network namespace (EINVAL)';
  else if (code === 'EPERM') reason = 'permission denied, need CAP_SYS_ADMIN (EPERM)';
  else if (!reason.includes(`(${code})`)) reason = `${reason} (${code})`;
  const out: NetnsError = new Error(`${what}: ${reason}`, { cause: err });
  out.code = code;
  return out;
}

function isThenable(v: unknown): boolean {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

/**
 * Opens a network namespace file for reading, without blocking and without trusting what the path
 * names: O_NONBLOCK so a FIFO planted at the path cannot stall the thread, then NS_GET_NSTYPE so a
 * regular file, a directory or another kind of namespace is refused. Errors carry `.code`: ENOENT
 * (no such path), EINVAL (not a network namespace), or the open's own errno. The caller closes the fd.
 */
export function openNetns(nsPath: string): number {
  if (typeof nsPath !== 'string' || nsPath === '') {
    throw new TypeError('a network namespace path must be a non-empty string');
  }
  let fd: number;
  try {
    fd = openSync(nsPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw wrapError(`open netns ${nsPath}`, err);
  }
  try {
    assertNetnsFd(fd, nsPath);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Throws EINVAL unless `fd` refers to a network namespace. */
export function assertNetnsFd(fd: number, what: string): void {
  let type: number;
  try {
    type = sys().nsType(fd);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'ENOTTY' && e.code !== 'EINVAL') throw wrapError(`inspect netns ${what}`, err);
    type = -1;
  }
  if (type !== CLONE_NEWNET) {
    const out: NetnsError = new Error(`open netns ${what}: not a network namespace (EINVAL)`);
    out.code = 'EINVAL';
    throw out;
  }
}

/**
 * Runs `fn` synchronously with the main thread switched into the network namespace at `nsPath`
 * (e.g. netnsPath('x'), a CNI_NETNS path like /var/run/netns/cni-..., or /proc/<pid>/ns/net),
 * and always switches back, also when `fn` throws. Returns what `fn` returns.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  if (typeof nsPath !== 'string' || nsPath === '') {
    throw new TypeError('inNetns: nsPath must be a non-empty path to a network namespace');
  }
  const fd = openNetns(nsPath);
  try {
    return inNetnsFd(fd, fn, nsPath);
  } finally {
    closeSync(fd);
  }
}

/** inNetns for a namespace already open as `fd` (see openNetns); `label` names it in errors. */
export function inNetnsFd<T>(fd: number, fn: () => T, label = `fd ${fd}`): T {
  if (typeof fn !== 'function') throw new TypeError('inNetns: fn must be a function');
  if (fn.constructor.name === 'AsyncFunction') {
    throw new TypeError(
      'inNetns: fn must be synchronous (an async function would resume in the wrong netns)',
    );
  }
  if (stranded) throw new Error(`inNetns: refusing, the process is stranded: ${stranded}`);
  const native = sys();
  let originFd: number;
  try {
    originFd = openSync(CURRENT_NETNS, 'r');
  } catch (err) {
    throw wrapError(`open current netns ${CURRENT_NETNS}`, err);
  }
  try {
    try {
      native.setns(fd, CLONE_NEWNET);
    } catch (err) {
      throw wrapError(`enter netns ${label}`, err);
    }
    let result: T;
    try {
      result = fn();
    } finally {
      try {
        native.setns(originFd, CLONE_NEWNET);
      } catch (err) {
        stranded = `could not return from netns ${label}: ${(err as Error).message}`;
        // biome-ignore lint/correctness/noUnsafeFinally: failing to switch back must win over fn's outcome.
        throw wrapError(`leave netns ${label} (process left in the wrong namespace)`, err);
      }
    }
    if (isThenable(result)) {
      // Its outcome is lost either way; keep a later rejection from crashing the process.
      (result as PromiseLike<unknown>).then(undefined, () => {});
      throw new TypeError(
        'inNetns: fn returned a Promise; it must be synchronous (continuations would run in the wrong netns)',
      );
    }
    return result;
  } finally {
    closeSync(originFd);
  }
}

/**
 * Identity of a network namespace: the inode of its nsfs file, as shown by
 * `readlink /proc/<pid>/ns/net` -> `net:[<inode>]`. Defaults to the calling thread's namespace.
 */
export function netnsInode(nsPath: string = CURRENT_NETNS): number {
  return Number(statSync(nsPath, { bigint: true }).ino);
}

/** Identity of the namespace an open namespace fd refers to. */
export function netnsInodeOfFd(fd: number): number {
  return Number(fstatSync(fd, { bigint: true }).ino);
}
