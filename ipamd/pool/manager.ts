/**
 * Runs the pool: snapshot the datastore, plan one action, execute it, repeat until the pool is at
 * target. Every EC2-touching job (growth, shrink, reconcile, leaked-ENI cleanup) runs through
 * `exclusive`, one at a time, so they never race each other over the same ENI.
 */
import type { Datastore } from '../datastore/datastore.js';
import type { Logger } from '../log.js';
import { assignedIpAddresses, eniAllocated, ipamdErrors, totalIpAddresses } from '../metrics.js';
import type { PoolExecutor } from './executor.js';
import { type PlannerInput, type PoolAction, type PoolLimits, type PoolTargets, plan } from './planner.js';
import type { SubnetPicker } from './subnets.js';

export interface PoolManagerOptions {
  ds: Datastore;
  executor: PoolExecutor;
  subnets: SubnetPicker;
  log: Logger;
  mode: 'ip' | 'prefix';
  targets: PoolTargets;
  limits: PoolLimits;
  shrinkIntervalMs: number;
  disableProvisioning: boolean;
  /** Device numbers of attached ENIs ipamd does not manage (no_manage tag). */
  unmanagedDeviceNumbers: () => number[];
  now?: () => number;
  /** Actions per tick before yielding, so one tick cannot run away. */
  maxStepsPerTick?: number;
  /**
   * EC2 refused addresses for an ENI with PrivateIpAddressLimitExceeded: ipamd's view of it is behind
   * EC2's (the daemon reconciles soon). The ENI counts as full meanwhile, with a growing backoff.
   */
  onAddressLimit?: (eniId: string) => void;
}

/** First and longest wait before growing an ENI again after EC2 said it is at its address limit. */
const ADDRESS_LIMIT_BACKOFF_MS = { first: 2_000, max: 60_000 };

export interface PoolStatus {
  /** Why the pool cannot grow, when it is short and cannot (see the planner's 'blocked' action). */
  blocked: { reason: string; permanent: boolean; retrySoon?: boolean } | null;
  lastError: string | null;
  lastAction: PoolAction | null;
}

export class PoolManager {
  private chain: Promise<unknown> = Promise.resolve();
  private kicked = false;
  private stopped = false;
  private lastShrinkAt = 0;
  /** ENIs EC2 reported full: until when they count as full, and the next backoff. */
  private readonly ec2Full = new Map<string, { until: number; nextMs: number }>();
  private readonly now: () => number;
  readonly status: PoolStatus = { blocked: null, lastError: null, lastAction: null };

  constructor(private readonly o: PoolManagerOptions) {
    this.now = o.now ?? Date.now;
  }

  get limits(): PoolLimits {
    return this.o.limits;
  }

  /** Why ENIs and addresses must not be added, nor ENIs removed, right now (a cordoned node); null: free. */
  private held: string | null = null;

  get changesHeld(): string | null {
    return this.held;
  }

  /** Holds every change but returning free addresses (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false on a cordoned node). */
  holdEniChanges(reason: string | null): void {
    if (reason === this.held) return;
    if (reason) this.o.log.info({ reason }, 'pool changes held');
    else this.o.log.info({ was: this.held }, 'pool changes no longer held');
    this.held = reason;
  }

  /** New limits (max pods changed on the node) for the next plan; the caller kicks the pool. */
  setLimits(limits: PoolLimits): void {
    this.o.limits = limits;
  }

  /** Runs fn after every earlier job, and before any later one. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  snapshot(): PlannerInput {
    const { ds, subnets } = this.o;
    const stats = ds.eniStats();
    const managed = stats.map((s) => s.eni.deviceNumber);
    return {
      mode: this.o.mode,
      targets: this.o.targets,
      limits: this.o.limits,
      enis: stats.map((s) => ({
        id: s.eni.id,
        deviceNumber: s.eni.deviceNumber,
        isPrimary: s.eni.isPrimary,
        forPods: s.eni.forPods,
        slotsUsed: s.slotsUsed,
        total: s.total,
        assigned: s.assigned,
        cooling: s.cooling,
        ready: s.ready,
        freeIps: ds.freeIps(s.eni.id),
        freePrefixes: ds.freePrefixes(s.eni.id),
        subnetBlocked: subnets.isBlocked(s.eni.subnetId),
        unconfirmed: s.eni.unconfirmed,
        ec2Full: (this.ec2Full.get(s.eni.id)?.until ?? 0) > this.now(),
      })),
      usedDeviceNumbers: [...new Set([...managed, ...this.o.unmanagedDeviceNumbers()])],
      createBlockedReason: this.o.disableProvisioning
        ? 'DISABLE_NETWORK_RESOURCE_PROVISIONING=true: ipamd does not create ENIs'
        : subnets.blockedReason(),
      now: this.now(),
      lastShrinkAt: this.lastShrinkAt,
      shrinkIntervalMs: this.o.shrinkIntervalMs,
    };
  }

  /** Plans and executes until the pool is at target, blocked, or a step fails. */
  tick(maxSteps?: number): Promise<void> {
    return this.exclusive(async () => {
      await this.o.subnets
        .refreshIfStale()
        .catch((err) => this.o.log.warn({ err: (err as Error).message }, 'subnet discovery failed'));
      const max = maxSteps ?? this.o.maxStepsPerTick ?? 20;
      for (let step = 0; step < max && !this.stopped; step++) {
        const action = plan(this.snapshot());
        this.status.lastAction = action;
        if (action.kind === 'none') {
          this.setBlocked(null);
          break;
        }
        if (action.kind === 'blocked') {
          this.setBlocked({
            reason: action.reason,
            permanent: action.permanent,
            ...(action.retrySoon ? { retrySoon: true } : {}),
          });
          break;
        }
        const shrinking = action.kind === 'release' || action.kind === 'delete-eni';
        if (this.held && action.kind !== 'release') {
          this.setBlocked({ reason: this.held, permanent: false });
          break;
        }
        if (this.o.disableProvisioning) {
          // Another agent owns ENIs and addresses; ipamd only uses what reconciliation finds.
          this.setBlocked(
            shrinking
              ? null
              : {
                  reason:
                    'DISABLE_NETWORK_RESOURCE_PROVISIONING=true: addresses are provisioned outside ipamd',
                  permanent: false,
                },
          );
          break;
        }
        this.o.log.info({ action: action.kind, reason: action.reason }, 'pool decision');
        try {
          await this.o.executor.run(action);
          this.status.lastError = null;
          if (shrinking) this.lastShrinkAt = this.now();
          if (action.kind === 'assign') this.ec2Full.delete(action.eniId);
        } catch (err) {
          const message = (err as Error).message;
          this.status.lastError = message;
          if (action.kind === 'assign' && (err as { kind?: string }).kind === 'address_limit') {
            this.backOffFull(action.eniId);
          }
          ipamdErrors.inc({ fn: action.kind });
          this.o.log.warn({ action: action.kind, err: message }, 'pool action failed; will retry');
          // A shrink that failed still counts as an attempt: do not retry it every tick.
          if (shrinking) this.lastShrinkAt = this.now();
          break;
        } finally {
          this.updateGauges();
        }
      }
    });
  }

  /** Trusts EC2's limit: the ENI is full until a backoff passes (doubling while EC2 keeps saying so). */
  private backOffFull(eniId: string): void {
    const prev = this.ec2Full.get(eniId);
    const waitMs = prev?.nextMs ?? ADDRESS_LIMIT_BACKOFF_MS.first;
    this.ec2Full.set(eniId, {
      until: this.now() + waitMs,
      nextMs: Math.min(waitMs * 2, ADDRESS_LIMIT_BACKOFF_MS.max),
    });
    this.o.log.warn(
      { eniId, retryInMs: waitMs },
      'EC2 says the ENI is at its address limit: ipamd counts it full and reconciles its view with EC2',
    );
    this.o.onAddressLimit?.(eniId);
  }

  private setBlocked(b: PoolStatus['blocked']): void {
    if (b && b.reason !== this.status.blocked?.reason)
      this.o.log.warn({ reason: b.reason }, 'pool cannot grow');
    this.status.blocked = b;
  }

  /** Asks for a tick soon, without waiting for it (coalesces bursts of requests). */
  kick(): void {
    if (this.kicked || this.stopped) return;
    this.kicked = true;
    setImmediate(() => {
      this.kicked = false;
      this.tick().catch((err) => this.o.log.error({ err: (err as Error).message }, 'pool tick failed'));
    });
  }

  /** Stops growing and shrinking; resolves once the action in flight has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.exclusive(async () => undefined);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  updateGauges(): void {
    const s = this.o.ds.stats();
    eniAllocated.set(this.o.ds.allEnis().length);
    totalIpAddresses.set(s.total);
    assignedIpAddresses.set(s.assigned);
  }
}
