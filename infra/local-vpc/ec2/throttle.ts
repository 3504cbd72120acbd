/**
 * EC2's request throttling model: per-account token buckets. Each request takes one token from its
 * action's bucket; a bucket refills at a steady rate up to its burst capacity; an empty bucket
 * means HTTP 503 RequestLimitExceeded.
 *
 * Buckets (the issue's figures): DescribeNetworkInterfaces 50 burst / 10 per s; other non-mutating
 * actions (Describe*, Get*, List*) share 100 / 20; Create/Delete/Assign/Unassign NetworkInterface
 * actions and ModifyNetworkInterfaceAttribute each 100 / 5; CreateTags 100 / 10; every other
 * mutating action shares 50 / 5.
 *
 * Exports: BucketSpec, DEFAULT_BUCKETS, bucketFor(action), TokenBuckets.
 */
export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

export const DEFAULT_BUCKETS: Record<string, BucketSpec> = {
  DescribeNetworkInterfaces: { capacity: 50, refillPerSecond: 10 },
  'non-mutating': { capacity: 100, refillPerSecond: 20 },
  CreateNetworkInterface: { capacity: 100, refillPerSecond: 5 },
  DeleteNetworkInterface: { capacity: 100, refillPerSecond: 5 },
  AssignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
  UnassignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
  ModifyNetworkInterfaceAttribute: { capacity: 100, refillPerSecond: 5 },
  CreateTags: { capacity: 100, refillPerSecond: 10 },
  mutating: { capacity: 50, refillPerSecond: 5 },
};

/** The bucket an action draws from. */
export function bucketFor(action: string): string {
  if (action in DEFAULT_BUCKETS) return action;
  if (/^(Describe|Get|List)/.test(action)) return 'non-mutating';
  return 'mutating';
}

interface Bucket {
  spec: BucketSpec;
  tokens: number;
  updatedAt: number;
}

export class TokenBuckets {
  private specs: Record<string, BucketSpec> = { ...DEFAULT_BUCKETS };
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** Replaces some bucket figures (by bucket name, see DEFAULT_BUCKETS) and refills every bucket. */
  configure(overrides: Record<string, BucketSpec> = {}): void {
    for (const [name, spec] of Object.entries(overrides)) {
      if (!(name in DEFAULT_BUCKETS)) {
        throw new Error(`unknown bucket '${name}'; known: ${Object.keys(DEFAULT_BUCKETS).join(', ')}`);
      }
      if (!(spec.capacity >= 1) || !(spec.refillPerSecond >= 0)) {
        throw new Error(`bucket '${name}' needs capacity >= 1 and refillPerSecond >= 0`);
      }
    }
    this.specs = { ...DEFAULT_BUCKETS, ...overrides };
    this.buckets.clear();
  }

  get figures(): Record<string, BucketSpec> {
    return { ...this.specs };
  }

  /** Takes a token for `action`; false when its bucket is empty. */
  take(action: string): boolean {
    const name = bucketFor(action);
    const spec = this.specs[name]!;
    const now = this.clock();
    let b = this.buckets.get(name);
    if (!b) {
      b = { spec, tokens: spec.capacity, updatedAt: now };
      this.buckets.set(name, b);
    }
    b.tokens = Math.min(spec.capacity, b.tokens + ((now - b.updatedAt) / 1000) * spec.refillPerSecond);
    b.updatedAt = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
