/**
 * Runs CNI calls that the native shim (native/cni-shim, installed as /opt/cni/bin/aws-cni) forwards
 * over the socket: the plugin's own code (cni/run.ts) with the runtime's CNI_* environment and
 * netconf, so a pod start costs one socket round trip instead of a Node process start.
 *
 * ipamd runs in the namespace the runtime calls plugins from (the node's), so the plumbing is the
 * same as the plugin process's. The handlers reach the datastore directly, through the same request
 * validation and error mapping the socket path applies. Calls for one container run one after
 * another (an ADD and its DEL must not interleave); calls for different pods may overlap.
 */

import { checkAdd, type IpamdApi, mapError } from '../cni/ipamd-client.js';
import { releasePod } from '../cni/plumbing.js';
import { runCni } from '../cni/run.js';
import {
  type CniOutcome,
  type CniRequest,
  PROTOCOL_VERSION,
  ProtocolError,
  parseRequest,
} from '../lib/protocol/ipamd.js';
import type { Logger } from './log.js';
import type { IpamHandler } from './server/handler.js';

export class CniExecutor {
  /** The last queued call per container id; removed when it is the last one and settles. */
  private readonly tails = new Map<string, Promise<void>>();
  private readonly direct: IpamdApi;

  constructor(
    ipam: IpamHandler,
    private readonly log: Logger,
  ) {
    this.direct = inProcessApi(ipam);
  }

  run(req: CniRequest): Promise<CniOutcome> {
    const key = req.env.CNI_CONTAINERID ?? '';
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(() => this.exec(req));
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

  /** How many containers have calls queued or running (for tests and introspection). */
  get busyContainers(): number {
    return this.tails.size;
  }

  private async exec(req: CniRequest): Promise<CniOutcome> {
    const started = performance.now();
    try {
      const out = await runCni({ env: req.env, stdin: req.stdin, ipamd: () => this.direct });
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
      // ipamd outlives the pod: a cached handle would pin its namespace.
      if (req.env.CNI_NETNS) releasePod(req.env.CNI_NETNS);
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
    del: (req) => call('del', { ...req }, (r) => ipam.del(r)),
    gc: (req) => call('gc', { ...req }, (r) => ipam.gc(r)),
    health: () => call('health', {}, () => ipam.health()),
  };
}
