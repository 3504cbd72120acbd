/**
 * EC2 and IMDS weather for the churn soak: episodes of 500/503 bursts, a 5xx error rate, throttling
 * (the documented token buckets, scaled down so two nodes can empty them), API latency, a long
 * eventual-consistency window for new ENIs, and IMDS lag, started at random moments and overlapping.
 * The local VPC's fault controls are global, so the scheduler owns them: every change re-applies the
 * set of active episodes on top of the VPC's baseline asynchrony.
 */
import type { LocalVpc } from '../../../infra/local-vpc/index.js';
import type { Rng } from './random.js';
import type { Tally } from './tally.js';

type Kind = 'burst-5xx' | 'error-rate' | 'throttle' | 'latency' | 'consistency' | 'imds-lag';

interface Episode {
  kind: Kind;
  until: number;
  apply(vpc: LocalVpc): void;
}

export interface FaultSchedulerOptions {
  vpc: LocalVpc;
  rng: Rng;
  tally: Tally;
  /** Seconds between episode starts (uniform in the range). */
  everySeconds: [number, number];
  /** The VPC's time scale: EC2/IMDS figures (windows, lag) are multiplied by it. */
  timeScale: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FaultScheduler {
  private active: Episode[] = [];
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: FaultSchedulerOptions) {}

  start(): void {
    this.loop = this.run();
  }

  /** Ends every episode and puts the VPC back to its baseline asynchrony. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.active = [];
    this.o.vpc.faults.reset();
    this.o.vpc.imds.setLagMs(this.o.vpc.asynchrony.imdsLagMs);
  }

  /** A consistency window of `windowMs` for `forMs` (the kill scheduler pairs it with a kill). */
  stretchConsistency(windowMs: number, forMs: number): void {
    if (this.stopped) return;
    this.begin({
      kind: 'consistency',
      until: Date.now() + forMs,
      apply: (vpc) => vpc.faults.setConsistencyWindow(Math.max(windowMs, vpc.faults.consistencyWindowMs)),
    });
  }

  private async run(): Promise<void> {
    const { rng } = this.o;
    while (!this.stopped) {
      const until = Date.now() + rng.between(...this.o.everySeconds) * 1000;
      while (!this.stopped && Date.now() < until) {
        await sleep(100);
        this.expire();
      }
      if (this.stopped) return;
      this.begin(this.episode(rng));
    }
  }

  private episode(rng: Rng): Episode {
    const scale = this.o.timeScale;
    const lasting = (lo: number, hi: number) => Date.now() + rng.between(lo, hi) * 1000;
    const kind = rng.weighted<Kind>({
      'burst-5xx': 3,
      'error-rate': 2,
      throttle: 2,
      latency: 2,
      consistency: 2,
      'imds-lag': 2,
    });
    switch (kind) {
      case 'burst-5xx': {
        const status = rng.pick([500, 503]);
        const count = rng.int(3, 20);
        // Consumed by the next calls, whoever makes them; the episode only marks when it began.
        return {
          kind,
          until: Date.now(),
          apply: (vpc) => vpc.faults.injectError({ action: '*', httpStatus: status, count }),
        };
      }
      case 'error-rate': {
        const probability = rng.between(0.05, 0.3);
        const status = rng.pick([500, 503]);
        return {
          kind,
          until: lasting(2, 8),
          apply: (vpc) => vpc.faults.injectError({ action: '*', httpStatus: status, probability }),
        };
      }
      case 'throttle': {
        const bucketScale = rng.between(0.02, 0.1);
        return {
          kind,
          until: lasting(4, 15),
          apply: (vpc) => vpc.faults.setThrottling(true, undefined, bucketScale),
        };
      }
      case 'latency': {
        const ms = rng.between(50, 400);
        const jitterMs = rng.between(100, 1200);
        return { kind, until: lasting(4, 15), apply: (vpc) => vpc.faults.setLatency('*', { ms, jitterMs }) };
      }
      case 'consistency': {
        const windowMs = rng.between(4_000, 12_000) * scale;
        return {
          kind,
          until: lasting(8, 20),
          apply: (vpc) => vpc.faults.setConsistencyWindow(Math.max(windowMs, vpc.faults.consistencyWindowMs)),
        };
      }
      case 'imds-lag': {
        const lagMs = rng.between(1_000, 5_000) * scale;
        return { kind, until: lasting(4, 15), apply: (vpc) => vpc.imds.setLagMs(lagMs) };
      }
    }
  }

  private begin(e: Episode): void {
    this.o.tally.inc(`fault ${e.kind}`);
    this.o.tally.note(`fault ${e.kind} for ${Math.max(0, (e.until - Date.now()) / 1000).toFixed(1)} s`);
    if (e.kind === 'burst-5xx') {
      e.apply(this.o.vpc); // adds to whatever is active; nothing to undo
      return;
    }
    this.active.push(e);
    this.reapply();
  }

  private expire(): void {
    const now = Date.now();
    const before = this.active.length;
    this.active = this.active.filter((e) => e.until > now);
    if (this.active.length !== before) this.reapply();
  }

  /** Baseline, then every active episode; bursts not yet consumed are kept. */
  private reapply(): void {
    const { vpc } = this.o;
    const bursts = vpc.faults.snapshot().errors.filter((e) => e.count !== undefined);
    vpc.faults.reset();
    vpc.imds.setLagMs(vpc.asynchrony.imdsLagMs);
    for (const e of this.active) e.apply(vpc);
    for (const b of bursts) vpc.faults.injectError(b);
  }
}
