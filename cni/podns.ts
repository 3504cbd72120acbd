/**
 * The pod's network namespace for one CNI call: a handle acting inside it and the namespace itself
 * (for placing the veth's peer), owned by that call and closed when it ends, never cached.
 *
 * Two ways to get one, behind one interface so the handlers do not know which runs them:
 * - the Node plugin, run by the runtime as root in the runtime's mount namespace, opens CNI_NETNS by
 *   path (without blocking, checked to be a network namespace) and enters it (setns);
 * - ipamd, which sees neither the runtime's mounts nor has CAP_SYS_ADMIN, adopts the NETLINK_ROUTE
 *   socket the shim made inside CNI_NETNS and passed over SCM_RIGHTS (ipamd/cni-exec.ts).
 * Either way a namespace that is the node's own is refused before anything changes: wiring a "pod"
 * there would replace the node's default route, tearing one down could delete the node's links.
 */
import { closeSync } from 'node:fs';
import { netnsInode, netnsInodeOfFd, openNetns } from '../lib/net/netns.js';
import { openRtnlInFd, type Rtnl } from '../lib/net/rtnl.js';
import { CniError, Code, describe } from './errors.js';

export interface PodNetns {
  /** CNI_NETNS as the runtime gave it (for results and messages; never opened again). */
  readonly path: string;
  /** Acts inside the pod's namespace. */
  readonly rtnl: Rtnl;
  /** The namespace itself, for IFLA_NET_NS_FD. */
  readonly nsFd: number;
  close(): void;
}

/** Why there is no namespace to act in: it is gone, or the path names something that is not one. */
export interface NoNetns {
  gone: true;
  reason: string;
}

/** How a call reaches its pod's namespace. */
export interface NetnsSource {
  /**
   * Opens the attachment's namespace. A missing one (ENOENT) or a path that is no network namespace
   * comes back as NoNetns (DEL then has nothing to do inside it); the node's own namespace and any
   * other failure throw a CniError with code 4.
   */
  open(path: string): PodNetns | NoNetns;
}

/** The same words whichever process opened CNI_NETNS (the Node plugin, or the shim for ipamd). */
export function netnsOpenFailure(code: string): string {
  if (code === 'ENOENT') return 'no such namespace (ENOENT)';
  if (code === 'EINVAL') return 'not a network namespace (EINVAL)';
  return `cannot open it (${code})`;
}

/** ENOENT and EINVAL mean there is no namespace there (any more); other errors are the caller's. */
export function netnsFailureIsGone(code: string): boolean {
  return code === 'ENOENT' || code === 'EINVAL';
}

export function invalidNetns(path: string, why: string): CniError {
  return new CniError(
    Code.invalidEnv,
    `cannot use the pod's network namespace ${path}`,
    `${why}; CNI_NETNS must name the pod's own network namespace`,
  );
}

/** Refuses the namespace the node itself (and so this process, run from it) lives in. */
export function assertNotNodeNetns(path: string, inode: number, nodeInode: number): void {
  if (inode === nodeInode) throw invalidNetns(path, "it is the node's own network namespace");
}

/** Builds a PodNetns from its parts, closing both when the call is done. */
export function podNetns(path: string, rtnl: Rtnl, nsFd: number): PodNetns {
  let closed = false;
  return {
    path,
    rtnl,
    nsFd,
    close() {
      if (closed) return;
      closed = true;
      rtnl.close();
      closeSync(nsFd);
    },
  };
}

/** The Node plugin's source: CNI_NETNS opened by path, entered with setns to make the handle. */
export const pathNetnsSource: NetnsSource = {
  open(path) {
    let fd: number;
    try {
      fd = openNetns(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      const reason = netnsOpenFailure(code);
      if (netnsFailureIsGone(code)) return { gone: true, reason };
      throw invalidNetns(path, reason);
    }
    try {
      assertNotNodeNetns(path, netnsInodeOfFd(fd), netnsInode());
      return podNetns(path, openRtnlInFd(fd, path), fd);
    } catch (err) {
      closeSync(fd);
      if (err instanceof CniError) throw err;
      throw invalidNetns(path, describe(err));
    }
  },
};
