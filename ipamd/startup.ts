/**
 * What keeps ipamd's start-up alive and honest while it cannot serve yet:
 *  - `retryStage`: a start-up step that fails for a transient reason (EC2 5xx or throttling after the
 *    SDK's own attempts, timeouts, IMDS lag) is retried with capped exponential backoff, forever;
 *    only a permanent error (configuration, instance type, permissions) ends the daemon;
 *  - `StartupGate`: the socket's handler from the first moment: health says "not ready: <reason>",
 *    add asks the runtime to retry, and releases are served from the checkpoint until the datastore
 *    takes over (then every request goes to the IpamService).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hasCode } from '../lib/net/errors.js';
import {
  type AddRequest,
  type AddResult,
  type DelRequest,
  type DelResult,
  type GcRequest,
  type GcResult,
  type HealthResult,
  ProtocolError,
} from '../lib/protocol/ipamd.js';
import { Ec2Error } from './aws/errors.js';
import { CheckpointError } from './checkpoint.js';
import { ConfigError } from './config.js';
import type { SavedAssignments } from './datastore/saved.js';
import { assertGcSparesSome, heldByOthers, type IpamService } from './ipam-handler.js';
import type { Logger } from './log.js';
import { delIpRequests } from './metrics.js';
import type { IpamHandler } from './server/handler.js';

/** A start-up error no retry can fix (the message says what to change). */
export class PermanentStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentStartError';
  }
}

export function isPermanent(err: unknown): boolean {
  if (err instanceof PermanentStartError || err instanceof ConfigError || err instanceof CheckpointError) {
    return true;
  }
  // A bad request or a missing IAM permission stays so; throttling, 5xx, network and NotFound pass.
  if (err instanceof Ec2Error) return err.kind === 'invalid' || err.kind === 'unauthorized';
  // The host refusing ipamd (no CAP_NET_ADMIN, a read-only path) is configuration too.
  return hasCode(err, 'EPERM', 'EACCES');
}

export interface RetryOptions {
  log: Logger;
  /** Told why start-up waits (the readiness probe's reason). */
  onWait: (reason: string) => void;
  firstDelayMs?: number;
  maxDelayMs?: number;
}

/** Runs a start-up step until it succeeds or fails permanently. */
export async function retryStage<T>(stage: string, fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const first = o.firstDelayMs ?? 1_000;
  const max = o.maxDelayMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (isPermanent(err)) throw err;
      const base = Math.min(max, first * 2 ** (attempt - 1));
      // Jitter so the nodes of a cluster hit by the same outage do not retry in lockstep.
      const waitMs = Math.round(base * (0.8 + Math.random() * 0.4));
      const message = (err as Error).message ?? String(err);
      o.log.warn({ stage, attempt, err: message, retryInMs: waitMs }, 'start-up step failed; retrying');
      o.onWait(`${stage}: ${message}; retrying in ${Math.ceil(waitMs / 1000)}s (attempt ${attempt})`);
      await sleep(waitMs);
    }
  }
}

const NOTHING: DelResult = {
  address: null,
  deviceNumber: null,
  routeTable: null,
  hostVethMac: null,
  heldByOthers: [],
};

export class StartupGate implements IpamHandler {
  private reason = 'ipamd is starting';
  private service: IpamService | null = null;
  /** What answers once open: the service, or a wrapper of it (ANNOTATE_POD_IP). */
  private serving: IpamHandler | null = null;

  constructor(
    private readonly saved: SavedAssignments,
    /** Writes the checkpoint (from `saved` until the datastore takes over). */
    private readonly persist: () => Promise<void>,
    private readonly log: Logger,
  ) {}

  /** Why ipamd cannot serve yet; passed on to the service once it exists. */
  setReason(reason: string): void {
    this.reason = `ipamd is starting: ${reason}`;
    this.service?.setReady(this.reason);
  }

  /**
   * From now on the datastore answers: call right where the checkpoint was replayed into it.
   * `serving` is the service as the socket should see it (e.g. annotating pods after ADD).
   */
  open(service: IpamService, serving: IpamHandler = service): void {
    this.service = service;
    this.serving = serving;
    service.setReady(this.reason);
  }

  add(req: AddRequest): Promise<AddResult> {
    if (this.serving) return this.serving.add(req);
    return Promise.reject(new ProtocolError('not_ready', this.reason));
  }

  async del(req: DelRequest): Promise<DelResult> {
    if (this.serving) return this.serving.del(req);
    const key = { network: req.network, containerId: req.containerId, ifName: req.ifName };
    const hit = this.saved.release(key);
    const others = heldByOthers(req.addresses, key, (a) => this.saved.holderOf(a));
    if (!hit) return { ...NOTHING, heldByOthers: others };
    await this.persistOrUndo([hit], `release ${hit.address}`);
    delIpRequests.inc({ reason: 'PodDeleted' });
    this.log.info({ ...key, address: hit.address, eniId: hit.eniId }, 'address released (while starting)');
    return { ...NOTHING, address: hit.address, hostVethMac: hit.hostVethMac ?? null, heldByOthers: others };
  }

  async gc(req: GcRequest): Promise<GcResult> {
    if (this.serving) return this.serving.gc(req);
    const live = this.saved.countOf(req.network);
    const released = this.saved.gc(req.network, req.valid);
    try {
      assertGcSparesSome(req, live, released.length);
    } catch (err) {
      this.saved.undo(released);
      throw err;
    }
    if (released.length > 0) await this.persistOrUndo(released, `gc of ${released.length} address(es)`);
    for (const r of released) {
      delIpRequests.inc({ reason: 'GC' });
      this.log.info({ ...r }, 'address released by gc (while starting)');
    }
    return {
      released: released.map((r) => ({
        containerId: r.containerId,
        ifName: r.ifName,
        address: r.address,
        ...(r.hostVethMac ? { hostVethMac: r.hostVethMac } : {}),
      })),
    };
  }

  async health(): Promise<HealthResult> {
    if (this.service) return this.service.health();
    return { ready: false, reason: this.reason, freeAddresses: 0 };
  }

  private async persistOrUndo(entries: Parameters<SavedAssignments['undo']>[0], what: string): Promise<void> {
    try {
      await this.persist();
    } catch (err) {
      this.saved.undo(entries);
      throw new ProtocolError(
        'internal',
        `cannot persist the checkpoint (${what}): ${(err as Error).message}`,
      );
    }
  }
}
