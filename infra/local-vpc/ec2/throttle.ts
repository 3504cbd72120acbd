/**
 * EC2's request throttling model, as "Request throttling for the Amazon EC2 API" (EC2 Developer Guide,
 * ec2-api-throttling) describes it: per account and region, each API action is evaluated individually
 * against its own token bucket; a request takes one token, a bucket refills at a steady rate up to its
 * maximum capacity, and an empty bucket answers RequestLimitExceeded. The figures come from the
 * guide's tables:
 *  - request buckets by category: non-mutating (Describe*, List*, Search*, Get*) 100 / 20 per s; the
 *    "unfiltered and unpaginated" subset (DescribeInstances, DescribeNetworkInterfaces, ...) called
 *    without a filter and without pagination 50 / 10; mutating 50 / 5; resource-intensive 50 / 5;
 *  - "uncategorized" actions with their own figures (CreateNetworkInterface 100 / 5, CreateTags 100 / 10,
 *    RunInstances 5 / 2, ...);
 *  - resource buckets, counted in instances rather than requests: RunInstances 1000 / 2,
 *    TerminateInstances 1000 / 20, StartInstances 1000 / 2, StopInstances 1000 / 20.
 * One module for the emulator and for benchmarks: `scale` multiplies every capacity and refill rate
 * (K nodes against buckets x K/1000 behave like 1,000 nodes against the real ones), and
 * tokenBucketBoundSeconds gives the least time the buckets allow for a set of calls.
 *
 * Exports: BucketSpec, RequestShape, CATEGORY_BUCKETS, UNFILTERED_SUBSET, RESOURCE_INTENSIVE,
 * UNCATEGORIZED_BUCKETS, RESOURCE_BUCKETS, requestBucketOf, resourceBucketOf, TokenBuckets,
 * tokenBucketBoundSeconds.
 */
export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/** What decides the bucket of a non-mutating call from the unfiltered subset. */
export interface RequestShape {
  /** The request has at least one Filter. */
  filtered?: boolean;
  /** The request has MaxResults or NextToken. */
  paginated?: boolean;
}

export type Category =
  | 'non-mutating'
  | 'unfiltered-non-mutating'
  | 'mutating'
  | 'resource-intensive'
  | 'uncategorized';

export const CATEGORY_BUCKETS: Record<Exclude<Category, 'uncategorized'>, BucketSpec> = {
  'non-mutating': { capacity: 100, refillPerSecond: 20 },
  'unfiltered-non-mutating': { capacity: 50, refillPerSecond: 10 },
  mutating: { capacity: 50, refillPerSecond: 5 },
  'resource-intensive': { capacity: 50, refillPerSecond: 5 },
};

/** Non-mutating actions that use the smaller bucket when called without a filter or pagination. */
export const UNFILTERED_SUBSET: ReadonlySet<string> = new Set([
  'DescribeInstances',
  'DescribeInstanceStatus',
  'DescribeNetworkInterfaces',
  'DescribeSecurityGroups',
  'DescribeSnapshots',
  'DescribeSpotInstanceRequests',
  'DescribeVolumes',
]);

export const RESOURCE_INTENSIVE: ReadonlySet<string> = new Set([
  'AcceptVpcPeeringConnection',
  'AuthorizeSecurityGroupIngress',
  'CancelSpotInstanceRequests',
  'CreateKeyPair',
  'CreateVpcPeeringConnection',
  'DeleteVpcPeeringConnection',
  'RejectVpcPeeringConnection',
  'RevokeSecurityGroupIngress',
  'RequestSpotInstances',
]);

/** The guide's uncategorized actions that a VPC CNI or this emulator touches (the table lists more). */
export const UNCATEGORIZED_BUCKETS: Record<string, BucketSpec> = {
  AssignIpv6Addresses: { capacity: 100, refillPerSecond: 5 },
  AssignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
  CreateNetworkInterface: { capacity: 100, refillPerSecond: 5 },
  CreateTags: { capacity: 100, refillPerSecond: 10 },
  DeleteNetworkInterface: { capacity: 100, refillPerSecond: 5 },
  DeleteTags: { capacity: 100, refillPerSecond: 10 },
  ModifyNetworkInterfaceAttribute: { capacity: 100, refillPerSecond: 5 },
  RunInstances: { capacity: 5, refillPerSecond: 2 },
  StartInstances: { capacity: 5, refillPerSecond: 2 },
  TerminateInstances: { capacity: 100, refillPerSecond: 5 },
  UnassignPrivateIpAddresses: { capacity: 100, refillPerSecond: 5 },
};

/** Resource rate limiting: tokens are instances launched, started, stopped or terminated. */
export const RESOURCE_BUCKETS: Record<string, BucketSpec> = {
  RunInstances: { capacity: 1000, refillPerSecond: 2 },
  TerminateInstances: { capacity: 1000, refillPerSecond: 20 },
  StartInstances: { capacity: 1000, refillPerSecond: 2 },
  StopInstances: { capacity: 1000, refillPerSecond: 20 },
};

const NON_MUTATING = /^(Describe|List|Search|Get)/;

/** The request bucket a call draws from: its name (the action, or `Action/unfiltered`) and figures. */
export function requestBucketOf(
  action: string,
  shape: RequestShape = {},
): { bucket: string; category: Category; spec: BucketSpec } {
  const own = UNCATEGORIZED_BUCKETS[action];
  if (own) return { bucket: action, category: 'uncategorized', spec: own };
  if (RESOURCE_INTENSIVE.has(action)) {
    return { bucket: action, category: 'resource-intensive', spec: CATEGORY_BUCKETS['resource-intensive'] };
  }
  if (NON_MUTATING.test(action)) {
    if (UNFILTERED_SUBSET.has(action) && !shape.filtered && !shape.paginated) {
      return {
        bucket: `${action}/unfiltered`,
        category: 'unfiltered-non-mutating',
        spec: CATEGORY_BUCKETS['unfiltered-non-mutating'],
      };
    }
    return { bucket: action, category: 'non-mutating', spec: CATEGORY_BUCKETS['non-mutating'] };
  }
  return { bucket: action, category: 'mutating', spec: CATEGORY_BUCKETS.mutating };
}

/** The resource bucket of an action that has one (named `Action/resources`). */
export function resourceBucketOf(action: string): { bucket: string; spec: BucketSpec } | undefined {
  const spec = RESOURCE_BUCKETS[action];
  return spec ? { bucket: `${action}/resources`, spec } : undefined;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface TokenBucketsOptions {
  clock?: () => number;
  /** Multiplies every capacity and refill rate (fleet scaling); default 1. */
  scale?: number;
  /** Replaces figures by bucket name (`DescribeSubnets`, `DescribeInstances/unfiltered`,
   *  `RunInstances/resources`) or by category (`mutating`, `non-mutating`, ...). */
  overrides?: Record<string, BucketSpec>;
}

const CATEGORY_NAMES = new Set<string>(Object.keys(CATEGORY_BUCKETS));
const BUCKET_NAME = /^[A-Z][A-Za-z0-9]+(\/unfiltered|\/resources)?$/;

function checkSpec(name: string, spec: BucketSpec): void {
  if (
    typeof spec !== 'object' ||
    spec === null ||
    !(spec.capacity >= 1) ||
    !(spec.refillPerSecond >= 0) ||
    !Number.isFinite(spec.capacity) ||
    !Number.isFinite(spec.refillPerSecond)
  ) {
    throw new Error(`bucket '${name}' needs capacity >= 1 and refillPerSecond >= 0`);
  }
}

export class TokenBuckets {
  private readonly clock: () => number;
  private scale = 1;
  private overrides: Record<string, BucketSpec> = {};
  private readonly buckets = new Map<string, Bucket>();

  constructor(opts: TokenBucketsOptions | (() => number) = {}) {
    const o = typeof opts === 'function' ? { clock: opts } : opts;
    this.clock = o.clock ?? Date.now;
    this.configure(o.overrides, o.scale);
  }

  /**
   * Replaces the overrides and the scale, and refills every bucket. `known` (action names) restricts
   * which bucket names an override may use, so a typo is an error rather than a bucket nobody uses.
   */
  configure(overrides: Record<string, BucketSpec> = {}, scale = 1, known?: ReadonlySet<string>): void {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new Error(`bucket scale must be > 0, got ${scale}`);
    for (const [name, spec] of Object.entries(overrides)) {
      const action = name.replace(/\/(unfiltered|resources)$/, '');
      const isKnownAction = known ? known.has(action) : BUCKET_NAME.test(name);
      if (!CATEGORY_NAMES.has(name) && !isKnownAction) {
        throw new Error(
          `unknown bucket '${name}'; use an action name (optionally with /unfiltered or /resources) or a category: ${[...CATEGORY_NAMES].join(', ')}`,
        );
      }
      checkSpec(name, spec);
    }
    this.overrides = { ...overrides };
    this.scale = scale;
    this.buckets.clear();
  }

  /** The figures in force for a bucket (overrides and scale applied). */
  specOf(bucket: string, category: Category | 'resources', base: BucketSpec): BucketSpec {
    const spec = this.overrides[bucket] ?? (category in this.overrides ? this.overrides[category] : base)!;
    return { capacity: spec.capacity * this.scale, refillPerSecond: spec.refillPerSecond * this.scale };
  }

  get figures(): { scale: number; overrides: Record<string, BucketSpec> } {
    return { scale: this.scale, overrides: { ...this.overrides } };
  }

  /** Takes one request token for `action`; false when its bucket is empty. */
  take(action: string, shape: RequestShape = {}): boolean {
    const { bucket, category, spec } = requestBucketOf(action, shape);
    return this.takeFrom(bucket, this.specOf(bucket, category, spec), 1);
  }

  /** Takes `count` resource tokens (instances) for an action with a resource bucket; true otherwise. */
  takeResources(action: string, count: number): boolean {
    const r = resourceBucketOf(action);
    if (!r || count <= 0) return true;
    return this.takeFrom(r.bucket, this.specOf(r.bucket, 'resources', r.spec), count);
  }

  private takeFrom(name: string, spec: BucketSpec, n: number): boolean {
    const now = this.clock();
    let b = this.buckets.get(name);
    if (!b) {
      b = { tokens: spec.capacity, updatedAt: now };
      this.buckets.set(name, b);
    }
    b.tokens = Math.min(spec.capacity, b.tokens + ((now - b.updatedAt) / 1000) * spec.refillPerSecond);
    b.updatedAt = now;
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }
}

/**
 * The least time, in seconds, in which EC2's request buckets let `calls` through (the "physical
 * limit" a benchmark compares against): every bucket starts full, so a bucket that must serve n
 * requests needs (n - capacity) / refill seconds; the slowest bucket bounds the whole.
 */
export function tokenBucketBoundSeconds(
  calls: Array<{ action: string; count: number; shape?: RequestShape }>,
  scale = 1,
): number {
  const need = new Map<string, { n: number; spec: BucketSpec }>();
  for (const c of calls) {
    const { bucket, spec } = requestBucketOf(c.action, c.shape);
    const entry = need.get(bucket) ?? { n: 0, spec };
    entry.n += c.count;
    need.set(bucket, entry);
  }
  let bound = 0;
  for (const { n, spec } of need.values()) {
    const capacity = spec.capacity * scale;
    const refill = spec.refillPerSecond * scale;
    if (n <= capacity) continue;
    bound = Math.max(bound, refill > 0 ? (n - capacity) / refill : Number.POSITIVE_INFINITY);
  }
  return bound;
}
