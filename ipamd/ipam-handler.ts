/**
 * The daemon's answers to the plugin: add, del, gc, health. Addresses come from the datastore only;
 * a pod never waits on EC2. Every change is in the checkpoint before it is acknowledged.
 * Releases (del, gc) are served as soon as the datastore is replayed; add waits until the pool is
 * ready (setReady), and every answer stops once the daemon closes.
 */

import { randomMac } from '../lib/net/addr.js';
import {
  type AddRequest,
  type AddResult,
  type DelRequest,
  type DelResult,
  type GcRequest,
  type GcResult,
  type HealthResult,
  ProtocolError,
  type SnatConfig,
} from '../lib/protocol/ipamd.js';
import type { Checkpoint } from './checkpoint.js';
import { type AttachmentId, type Datastore, type EniRecord, keyOf } from './datastore/datastore.js';
import type { Logger } from './log.js';
import { addIpRequests, assignedIpAddresses, delIpRequests, noAvailableIpAddresses } from './metrics.js';
import type { PoolManager } from './pool/manager.js';
import type { IpamHandler } from './server/handler.js';

type PoolView = Pick<PoolManager, 'kick' | 'status'>;

export interface IpamHandlerOptions {
  ds: Datastore;
  checkpoint: Checkpoint;
  /** The pool; absent while it is being built (releases are served before it exists). */
  pool?: PoolView;
  log: Logger;
  vpcCidrs: string[];
  snat: SnatConfig;
  podMtu: number;
  vethPrefix: string;
  maxPods: number;
}

/**
 * A GC that would release every attachment of the network is refused unless forced: an empty or
 * stale list from a confused caller would take every pod's address at once.
 */
export function assertGcSparesSome(req: GcRequest, live: number, doomed: number): void {
  if (req.force || live === 0 || doomed < live) return;
  throw new ProtocolError(
    'bad_request',
    `refusing to release all ${live} attachment(s) of network "${req.network}": none of them is in the valid list; delete the pods (CNI DEL) or send "force": true`,
  );
}

/** Of `addresses` (a DEL's prevResult), those some other attachment than `key` holds. */
export function heldByOthers(
  addresses: string[] | undefined,
  key: AttachmentId,
  holderOf: (address: string) => AttachmentId | null,
): string[] {
  return (addresses ?? []).filter((a) => {
    const holder = holderOf(a);
    return holder !== null && keyOf(holder) !== keyOf(key);
  });
}

/** Main routing table for the primary ENI; others use deviceNumber + 1 (the reference's layout). */
export function routeTableFor(deviceNumber: number): number {
  return deviceNumber === 0 ? 254 : deviceNumber + 1;
}

const NO_POOL: PoolView = {
  kick: () => undefined,
  status: { blocked: null, lastError: null, lastAction: null },
};

export class IpamService implements IpamHandler {
  private notReadyReason: string | null = 'ipamd is starting';
  private closedReason: string | null = null;
  private pool: PoolView;

  constructor(private readonly o: IpamHandlerOptions) {
    this.pool = o.pool ?? NO_POOL;
  }

  /** The pool, once built: add kicks it and explains its state when no address is free. */
  setPool(pool: PoolView): void {
    this.pool = pool;
  }

  /** Why add (and the health check) is not ready yet, or null once it is. */
  setReady(reason: string | null): void {
    this.notReadyReason = reason;
  }

  /** Refuses every request from now on (shutting down). */
  close(reason: string): void {
    this.closedReason = reason;
    this.notReadyReason = reason;
  }

  private ensureReady(): void {
    if (this.notReadyReason !== null) throw new ProtocolError('not_ready', this.notReadyReason);
  }

  private ensureOpen(): void {
    if (this.closedReason !== null) throw new ProtocolError('not_ready', this.closedReason);
  }

  private async persist(what: string): Promise<void> {
    try {
      await this.o.checkpoint.persist();
    } catch (err) {
      throw new ProtocolError(
        'internal',
        `cannot persist the checkpoint (${what}): ${(err as Error).message}`,
      );
    }
  }

  async add(req: AddRequest): Promise<AddResult> {
    this.ensureReady();
    addIpRequests.inc();
    const { ds, log } = this.o;
    const key = { network: req.network, containerId: req.containerId, ifName: req.ifName };
    const out = ds.assign({
      ...key,
      podNamespace: req.podNamespace,
      podName: req.podName,
      netns: req.netns,
      hostVethMac: randomMac(),
    });
    if (!out) {
      noAvailableIpAddresses.inc();
      this.pool.kick();
      throw this.noAddressError();
    }
    try {
      await this.persist(`assign ${out.address}`);
    } catch (err) {
      if (out.fresh) ds.unassign(key);
      throw err;
    }
    if (out.fresh) {
      log.info(
        {
          ...key,
          pod: `${req.podNamespace ?? ''}/${req.podName ?? ''}`,
          address: out.address,
          eniId: out.eni.id,
        },
        'address assigned',
      );
    }
    assignedIpAddresses.set(ds.stats().assigned);
    this.pool.kick();
    // An assignment replayed from a checkpoint older than hostVethMac gets one now (kept in memory;
    // the next checkpoint write stores it).
    const held = ds.lookup(key)!.assignment;
    held.hostVethMac ??= randomMac();
    return this.result(out.address, out.eni, held.hostVethMac);
  }

  private result(address: string, eni: EniRecord, hostVethMac: string): AddResult {
    return {
      hostVethMac,
      address,
      eniId: eni.id,
      deviceNumber: eni.deviceNumber,
      routeTable: routeTableFor(eni.deviceNumber),
      subnetCidr: eni.subnetCidr,
      vpcCidrs: this.o.vpcCidrs,
      snat: this.o.snat,
      mtu: this.o.podMtu,
      vethPrefix: this.o.vethPrefix,
    };
  }

  /**
   * The precise reason no address could be handed out right now. Released addresses still cooling
   * down will be free without anything else happening, so they make the answer retryable whatever
   * the pool can do meanwhile (growing, or blocked at the ENI or subnet limit), and it says when.
   */
  private noAddressError(): ProtocolError {
    const { ds } = this.o;
    const stats = ds.stats();
    if (stats.assigned >= this.o.maxPods) {
      return new ProtocolError('exhausted', `no free address: node at max pods (${this.o.maxPods})`);
    }
    const { blocked, lastError } = this.pool.status;
    const growing = `the pool is growing${lastError ? ` (last attempt: ${lastError})` : ''}`;
    if (stats.cooling > 0) {
      const next = ds.nextCooldownEnd();
      const secs = next === null ? 0 : Math.max(1, Math.ceil((next - Date.now()) / 1000));
      const period = Math.round(ds.cooldownPeriodMs / 1000);
      const meanwhile = blocked ? `the pool cannot grow: ${blocked.reason}` : growing;
      return new ProtocolError(
        'pool_empty',
        `no free address: ${stats.cooling} released address(es) are cooling down (IP_COOLDOWN_PERIOD=${period}s), the first is free in ${secs}s; ${meanwhile}`,
      );
    }
    if (blocked?.retrySoon)
      return new ProtocolError('pool_empty', `no free address yet: ${blocked.reason}; retry shortly`);
    if (blocked) return new ProtocolError('exhausted', `no free address: ${blocked.reason}`);
    return new ProtocolError('pool_empty', `no free address yet: ${growing}; retry shortly`);
  }

  async del(req: DelRequest): Promise<DelResult> {
    this.ensureOpen();
    const { ds, log } = this.o;
    const key = { network: req.network, containerId: req.containerId, ifName: req.ifName };
    const r = ds.release(key);
    // Addresses the runtime's prevResult names that another attachment holds now: a late DEL must
    // leave them alone, whatever this attachment once had.
    const others = heldByOthers(req.addresses, key, (a) => ds.holderOf(a));
    if (!r)
      return { address: null, deviceNumber: null, routeTable: null, hostVethMac: null, heldByOthers: others };
    try {
      await this.persist(`release ${r.address}`);
    } catch (err) {
      ds.assign(r.assignment, r.address);
      throw err;
    }
    delIpRequests.inc({ reason: 'PodDeleted' });
    log.info({ ...key, address: r.address, eniId: r.eni.id }, 'address released');
    assignedIpAddresses.set(ds.stats().assigned);
    this.pool.kick();
    return {
      address: r.address,
      deviceNumber: r.eni.deviceNumber,
      routeTable: routeTableFor(r.eni.deviceNumber),
      hostVethMac: r.assignment.hostVethMac ?? null,
      heldByOthers: others,
    };
  }

  /**
   * Finishes a DEL the plugin ran while ipamd was away (lib/protocol/pending-del.ts): releases the
   * key's address if it was assigned before the DEL happened (an ADD retried since keeps its new one).
   * `unwire` removes the pod's host routing first, while the address is still held: no other pod can
   * have been given it, and a crash before the release leaves the note to be finished again.
   * Returns what was released, or null.
   */
  async releasePending(
    key: AttachmentId,
    deletedAt: number,
    unwire?: (owned: { address: string; hostVethMac?: string }) => Promise<void>,
  ): Promise<{ address: string; hostVethMac?: string } | null> {
    const { ds, log } = this.o;
    const held = ds.lookup(key);
    if (!held || Date.parse(held.assignment.assignedAt) > deletedAt) return null;
    const owned = {
      address: held.address,
      ...(held.assignment.hostVethMac ? { hostVethMac: held.assignment.hostVethMac } : {}),
    };
    if (unwire) {
      await unwire(owned).catch((err) =>
        log.warn({ address: owned.address, err: (err as Error).message }, 'host state of a pending DEL left'),
      );
      // A DEL that came meanwhile released it (and unwired it) already.
      if (ds.lookup(key)?.assignment !== held.assignment) return null;
    }
    const r = ds.release(key);
    if (!r) return null;
    try {
      await this.persist(`release ${r.address}`);
    } catch (err) {
      ds.assign(r.assignment, r.address);
      throw err;
    }
    delIpRequests.inc({ reason: 'PodDeleted' });
    log.info({ ...key, address: r.address }, 'address released for a DEL that ran while ipamd was away');
    assignedIpAddresses.set(ds.stats().assigned);
    this.pool.kick();
    return owned;
  }

  async gc(req: GcRequest): Promise<GcResult> {
    this.ensureOpen();
    const live = this.o.ds.assignments().filter((a) => a.assignment.network === req.network);
    const valid = new Set(req.valid.map((v) => keyOf({ network: req.network, ...v })));
    assertGcSparesSome(req, live.length, live.filter((a) => !valid.has(keyOf(a.assignment))).length);
    const released = this.o.ds.gc(req.network, req.valid);
    if (released.length > 0) {
      await this.persist(`gc of ${released.length} address(es)`);
      for (const r of released) {
        delIpRequests.inc({ reason: 'GC' });
        this.o.log.info({ ...r.assignment, address: r.address }, 'address released by gc');
      }
      this.pool.kick();
    }
    return {
      released: released.map((r) => ({
        containerId: r.assignment.containerId,
        ifName: r.assignment.ifName,
        address: r.address,
        ...(r.assignment.hostVethMac ? { hostVethMac: r.assignment.hostVethMac } : {}),
      })),
    };
  }

  async health(): Promise<HealthResult> {
    const free = this.o.ds.stats().ready;
    if (this.notReadyReason !== null)
      return { ready: false, reason: this.notReadyReason, freeAddresses: free };
    return { ready: true, freeAddresses: free };
  }
}
