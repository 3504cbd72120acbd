/**
 * Running code inside another network namespace, via the `native/netns` setns(2) addon.
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
import { closeSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** CLONE_NEWNET from <sched.h>: makes setns refuse an fd that is not a network namespace. */
export const CLONE_NEWNET = 0x40000000;

/** Where `ip netns add <name>` bind-mounts named namespaces. */
export const NETNS_RUN_DIR = '/var/run/netns';

/** The network namespace of the calling (main) thread. /proc/self would be the thread group leader. */
const CURRENT_NETNS = '/proc/thread-self/ns/net';

interface NetnsAddon {
  setns(fd: number, nstype: number): void;
}

let addon: NetnsAddon | undefined;
/** Set when switching back failed: the process is stranded in a foreign namespace. */
let stranded: string | undefined;

/**
 * Candidate locations of the compiled addon, relative to this module. In a bundle (dist/*.mjs)
 * import.meta.url is the bundle, and build.mjs puts netns.node next to it (one directory up from a chunk
 * of a split bundle, dist/ipamd-chunks/); from sources (vitest, tsx) this file is lib/net/netns.ts and
 * node-gyp's output is under native/.
 */
function addonCandidates(): string[] {
  const rel = [
    './netns.node',
    '../netns.node',
    '../../native/netns/build/Release/netns.node',
    '../../dist/netns.node',
  ];
  return rel.map((r) => fileURLToPath(new URL(r, import.meta.url)));
}

/** Loads the addon on first use so that importing this module costs nothing. */
function loadAddon(): NetnsAddon {
  if (addon) return addon;
  const override = process.env['VPCCNI_NETNS_ADDON'];
  const candidates = override ? [override] : addonCandidates();
  const requireNative = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const file of candidates) {
    try {
      const mod = requireNative(file) as Partial<NetnsAddon>;
      if (typeof mod.setns !== 'function') throw new Error('does not export setns()');
      addon = mod as NetnsAddon;
      return addon;
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `netns addon not found or not loadable; run "npm run build" (builds native/netns). Tried:\n  ${failures.join('\n  ')}`,
  );
}

/** Raw setns(2) on an open fd; throws an Error with `.code` (EBADF, EINVAL, EPERM, ...). */
export function setns(fd: number, nstype: number = CLONE_NEWNET): void {
  loadAddon().setns(fd, nstype);
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
 * Runs `fn` synchronously with the main thread switched into the network namespace at `nsPath`
 * (e.g. netnsPath('x'), a CNI_NETNS path like /var/run/netns/cni-..., or /proc/<pid>/ns/net),
 * and always switches back, also when `fn` throws. Returns what `fn` returns.
 */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  if (typeof nsPath !== 'string' || nsPath === '') {
    throw new TypeError('inNetns: nsPath must be a non-empty path to a network namespace');
  }
  if (typeof fn !== 'function') throw new TypeError('inNetns: fn must be a function');
  if (fn.constructor.name === 'AsyncFunction') {
    throw new TypeError(
      'inNetns: fn must be synchronous (an async function would resume in the wrong netns)',
    );
  }
  if (stranded) throw new Error(`inNetns: refusing, the process is stranded: ${stranded}`);
  const native = loadAddon();

  let targetFd: number;
  try {
    targetFd = openSync(nsPath, 'r');
  } catch (err) {
    throw wrapError(`open netns ${nsPath}`, err);
  }
  let originFd: number;
  try {
    originFd = openSync(CURRENT_NETNS, 'r');
  } catch (err) {
    closeSync(targetFd);
    throw wrapError(`open current netns ${CURRENT_NETNS}`, err);
  }

  try {
    try {
      native.setns(targetFd, CLONE_NEWNET);
    } catch (err) {
      throw wrapError(`enter netns ${nsPath}`, err);
    }
    let result: T;
    try {
      result = fn();
    } finally {
      try {
        native.setns(originFd, CLONE_NEWNET);
      } catch (err) {
        stranded = `could not return from netns ${nsPath}: ${(err as Error).message}`;
        // biome-ignore lint/correctness/noUnsafeFinally: failing to switch back must win over fn's outcome.
        throw wrapError(`leave netns ${nsPath} (process left in the wrong namespace)`, err);
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
    closeSync(targetFd);
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
