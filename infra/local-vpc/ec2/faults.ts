/**
 * Fault injection for the EC2 emulator, set per test through this object or the HTTP control API:
 * per-action latency, the throttling model (throttle.ts; off by default), injected 5xx errors (next N
 * calls or a probability), and an eventual-consistency window during which a newly created ENI is
 * NotFound to every call that names it (EC2 API reference, "Eventual consistency in the Amazon EC2
 * API": a call on a just-created resource may answer InvalidXxx.NotFound until it propagates).
 *
 * Exports: LatencySpec, ErrorInjection, FaultsSnapshot, Faults.
 */
import { Ec2Error } from './errors.js';
import { type BucketSpec, type RequestShape, TokenBuckets } from './throttle.js';

export interface LatencySpec {
  ms: number;
  /** Extra random delay, uniform in [0, jitterMs). */
  jitterMs?: number;
}

export interface ErrorInjection {
  /** Action name, or '*' for every action. */
  action: string;
  httpStatus?: number;
  code?: string;
  message?: string;
  /** Fail the next `count` matching calls. */
  count?: number;
  /** Or fail each matching call with this probability (0..1). */
  probability?: number;
}

export interface FaultsSnapshot {
  latency: Record<string, LatencySpec>;
  throttling: { enabled: boolean; scale: number; buckets: Record<string, BucketSpec> };
  errors: ErrorInjection[];
  consistencyWindowMs: number;
}

const DEFAULT_CODES: Record<number, string> = { 500: 'InternalError', 503: 'Unavailable' };

export class Faults {
  private latency = new Map<string, LatencySpec>();
  private throttlingEnabled = false;
  private readonly buckets: TokenBuckets;
  private errors: ErrorInjection[] = [];
  consistencyWindowMs = 0;
  /** The window reset() returns to: the VPC's asynchrony, not a fault a test injected. */
  private baselineConsistencyWindowMs = 0;

  constructor(
    readonly clock: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {
    this.buckets = new TokenBuckets({ clock });
  }

  setLatency(action: string, spec: LatencySpec | undefined): void {
    if (spec === undefined) {
      this.latency.delete(action);
      return;
    }
    if (!(spec.ms >= 0) || (spec.jitterMs !== undefined && !(spec.jitterMs >= 0))) {
      throw new Error('latency needs ms >= 0 and jitterMs >= 0');
    }
    this.latency.set(action, spec);
  }

  /** Delay for one call of `action`: its own setting, else the '*' one. */
  delayFor(action: string): number {
    const spec = this.latency.get(action) ?? this.latency.get('*');
    if (!spec) return 0;
    return spec.ms + (spec.jitterMs ? this.random() * spec.jitterMs : 0);
  }

  /**
   * Turns the throttling model on or off; `buckets` overrides some figures (by bucket or category
   * name, see throttle.ts), `scale` multiplies all of them; either refills every bucket.
   */
  setThrottling(enabled: boolean, buckets?: Record<string, BucketSpec>, scale = 1): void {
    this.buckets.configure(buckets, scale, this.knownActions);
    this.throttlingEnabled = enabled;
  }

  /** Action names a bucket override may use (the server sets the actions it serves). */
  knownActions: ReadonlySet<string> | undefined;

  /**
   * Throws RequestLimitExceeded (HTTP 503) when throttling is on and the call's request bucket, or
   * for RunInstances/TerminateInstances its resource bucket for `resources` instances, is empty.
   */
  checkThrottle(action: string, shape: RequestShape = {}, resources = 0): void {
    if (!this.throttlingEnabled) return;
    if (!this.buckets.take(action, shape) || !this.buckets.takeResources(action, resources)) {
      throw new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503);
    }
  }

  injectError(spec: ErrorInjection): void {
    if (!spec.action) throw new Error('an error injection needs an action (or "*")');
    const status = spec.httpStatus ?? 500;
    if (!(status >= 400 && status <= 599)) throw new Error('httpStatus must be 4xx or 5xx');
    if ((spec.count === undefined) === (spec.probability === undefined)) {
      throw new Error('give exactly one of count (next N calls) or probability (0..1)');
    }
    if (spec.count !== undefined && !(Number.isInteger(spec.count) && spec.count > 0)) {
      throw new Error('count must be a positive integer');
    }
    if (spec.probability !== undefined && !(spec.probability >= 0 && spec.probability <= 1)) {
      throw new Error('probability must be between 0 and 1');
    }
    this.errors.push({ ...spec, httpStatus: status });
  }

  /** Throws the injected error when one applies to this call of `action`. */
  checkInjectedError(action: string): void {
    for (const e of this.errors) {
      if (e.action !== action && e.action !== '*') continue;
      let fire = false;
      if (e.count !== undefined && e.count > 0) {
        e.count--;
        fire = true;
      } else if (e.probability !== undefined) {
        fire = this.random() < e.probability;
      }
      this.errors = this.errors.filter((x) => x.count === undefined || x.count > 0);
      if (fire) {
        const status = e.httpStatus ?? 500;
        throw new Ec2Error(
          e.code ?? DEFAULT_CODES[status] ?? 'InternalError',
          e.message ?? 'An internal error has occurred (injected by the local VPC).',
          status,
        );
      }
    }
  }

  /** Sets the window; `{ baseline: true }` also makes it what reset() returns to. */
  setConsistencyWindow(ms: number, opts: { baseline?: boolean } = {}): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new Error('consistency window must be >= 0 ms');
    this.consistencyWindowMs = ms;
    if (opts.baseline) this.baselineConsistencyWindowMs = ms;
  }

  /** True while a resource created at `createdAt` has not propagated: calls naming it answer NotFound. */
  hiddenByConsistency(createdAt: Date): boolean {
    return this.consistencyWindowMs > 0 && this.clock() - createdAt.getTime() < this.consistencyWindowMs;
  }

  /** Clears every fault (throttling off, no latency, no errors; the window back to its baseline). */
  reset(): void {
    this.latency.clear();
    this.throttlingEnabled = false;
    this.buckets.configure(undefined, 1, this.knownActions);
    this.errors = [];
    this.consistencyWindowMs = this.baselineConsistencyWindowMs;
  }

  snapshot(): FaultsSnapshot {
    return {
      latency: Object.fromEntries(this.latency),
      throttling: {
        enabled: this.throttlingEnabled,
        scale: this.buckets.figures.scale,
        buckets: this.buckets.figures.overrides,
      },
      errors: this.errors.map((e) => ({ ...e })),
      consistencyWindowMs: this.consistencyWindowMs,
    };
  }
}
