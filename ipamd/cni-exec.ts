/**
 * Runs CNI calls that the native shim (native/cni-shim, installed as /opt/cni/bin/aws-cni) forwards
 * over the socket: the plugin's own code (cni/run.ts) with the runtime's CNI_* environment and
 * netconf, so a pod start costs one socket round trip instead of a Node process start.
 *
 * ipamd runs in the node's network namespace but, in the aws-node container, in a mount namespace
 * of its own and with only NET_ADMIN/NET_RAW: it can neither see the runtime's CNI_NETNS path nor
 * enter a namespace. The shim therefore sends a NETLINK_ROUTE socket it created inside CNI_NETNS;
 * ipamd acts in the pod's namespace through that socket and learns the namespace itself from it
 * (SIOCGSKNS), refusing the node's own. A call that should carry such a socket and does not (an older
 * shim) is refused before it runs, so the shim falls back to the Node plugin.
 *
 * The handlers reach the datastore directly, through the same request validation and error mapping
 * the socket path applies. Calls for one container run one after another (an ADD and its DEL must
 * not interleave); calls for different pods may overlap.
 */

import { closeSync } from 'node:fs';
import { checkAdd, checkDel, type IpamdApi, mapError } from '../cni/ipamd-client.js';
import { type Owned, removeHostLeftovers } from '../cni/plumbing.js';
import {
  assertNotNodeNetns,
  invalidNetns,
  type NetnsSource,
  netnsFailureIsGone,
  netnsOpenFailure,
  podNetns,
} from '../cni/podns.js';
import { runCni } from '../cni/run.js';
import { netnsInode, netnsInodeOfFd } from '../lib/net/netns.js';
import { adoptRtnl, type Rtnl } from '../lib/net/rtnl.js';
import { sys } from '../lib/net/sys.js';
import {
  type CniOutcome,
  type CniRequest,
  PROTOCOL_VERSION,
  ProtocolError,
  parseRequest,
} from '../lib/protocol/ipamd.js';
import type { Logger } from './log.js';
import type { IpamHandler } from './server/handler.js';

/** Commands that act inside the pod's namespace. */
const IN_POD = new Set(['ADD', 'DEL', 'CHECK']);

export class CniExecutor {
  /** The last queued call per container id; removed when it is the last one and settles. */
  private readonly tails = new Map<string, Promise<void>>();
  private readonly direct: IpamdApi;
  /** The node's namespace (ipamd runs in it): never a pod's. */
  private readonly nodeNetns = netnsInode();

  constructor(
    ipam: IpamHandler,
    private readonly log: Logger,
  ) {
    this.direct = inProcessApi(ipam);
  }

  /** Runs one forwarded call; owns `fds` (closed by the time the returned promise settles). */
  run(req: CniRequest, fds: number[] = []): Promise<CniOutcome> {
    try {
      assertNetnsCarried(req, fds);
    } catch (err) {
      closeAll(fds);
      return Promise.reject(err);
    }
    const key = req.env.CNI_CONTAINERID ?? '';
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(() => this.exec(req, fds));
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Host state of an address released without a CNI call (a pending DEL): rules, veth by MAC. */
  removeHostLeftovers(owned: Owned): Promise<void> {
    return removeHostLeftovers(owned);
  }

  /** How many containers have calls queued or running (for tests and introspection). */
  get busyContainers(): number {
    return this.tails.size;
  }

  private async exec(req: CniRequest, fds: number[]): Promise<CniOutcome> {
    const started = performance.now();
    const netns = passedNetns(req, fds, this.nodeNetns);
    try {
      const out = await runCni({ env: req.env, stdin: req.stdin, ipamd: () => this.direct, netns });
      this.log.debug(
        {
          command: req.env.CNI_COMMAND,
          containerId: req.env.CNI_CONTAINERID,
          exitCode: out.exitCode,
          ms: Math.round(performance.now() - started),
        },
        'cni call served',
      );
      return out;
    } finally {
      closeAll(fds);
    }
  }
}

/** A call that acts in the pod's namespace must come with its socket or say why it has none. */
function assertNetnsCarried(req: CniRequest, fds: number[]): void {
  const needs = IN_POD.has(req.env.CNI_COMMAND ?? '') && Boolean(req.env.CNI_NETNS);
  if (needs && req.netnsFd !== 1 && req.netnsErrno === undefined) {
    throw new ProtocolError(
      'bad_request',
      'this ipamd acts in a pod namespace only through the netlink socket the aws-cni shim passes with the call; run the plugin itself',
    );
  }
  if (fds.length !== (req.netnsFd === 1 ? 1 : 0)) {
    throw new ProtocolError(
      'bad_request',
      `the request says ${req.netnsFd === 1 ? 'one descriptor' : 'no descriptor'} and carried ${fds.length}`,
    );
  }
}

/**
 * The pod's namespace as the shim passed it: the socket it made inside CNI_NETNS, or the errno it
 * got opening CNI_NETNS. The socket is taken from `fds` when opened (the handle then owns it).
 */
function passedNetns(req: CniRequest, fds: number[], nodeNetns: number): NetnsSource {
  return {
    open(path) {
      if (req.netnsErrno !== undefined) {
        const reason = netnsOpenFailure(req.netnsErrno);
        if (netnsFailureIsGone(req.netnsErrno)) return { gone: true, reason };
        throw invalidNetns(path, reason);
      }
      const fd = fds.shift();
      if (fd === undefined) throw invalidNetns(path, 'no netlink socket came with the request');
      let rtnl: Rtnl;
      try {
        rtnl = adoptRtnl(fd, path);
      } catch (err) {
        closeAll([fd]);
        throw invalidNetns(
          path,
          `the descriptor passed is not a NETLINK_ROUTE socket (${(err as Error).message})`,
        );
      }
      let nsFd: number | undefined;
      try {
        nsFd = rtnl.netnsFd();
        assertNotNodeNetns(path, netnsInodeOfFd(nsFd), nodeNetns);
        return podNetns(path, rtnl, nsFd);
      } catch (err) {
        rtnl.close();
        if (nsFd !== undefined) closeSync(nsFd);
        throw err;
      }
    },
  };
}

function closeAll(fds: number[]): void {
  for (const fd of fds.splice(0)) {
    try {
      sys().close(fd);
    } catch {
      // already closed
    }
  }
}

/**
 * ipamd's handler as the plugin's IpamdApi. Requests go through parseRequest, as over the socket, so
 * both paths accept and refuse the same things; errors become the CNI errors the client would map.
 */
function inProcessApi(ipam: IpamHandler): IpamdApi {
  const call = async <T>(op: string, body: Record<string, unknown>, fn: (req: never) => Promise<T>) => {
    try {
      const req = parseRequest(JSON.stringify({ v: PROTOCOL_VERSION, op, ...body }));
      return await fn(req as never);
    } catch (err) {
      if (err instanceof ProtocolError) throw mapError(err.code, err.message, op);
      throw mapError('internal', `ipamd internal error: ${(err as Error).message}`, op);
    }
  };
  return {
    add: (req) => call('add', { ...req }, (r) => ipam.add(r)).then(checkAdd),
    del: (req) => call('del', { ...req }, (r) => ipam.del(r)).then(checkDel),
    gc: (req) => call('gc', { ...req }, (r) => ipam.gc(r)),
    health: () => call('health', {}, () => ipam.health()),
  };
}
