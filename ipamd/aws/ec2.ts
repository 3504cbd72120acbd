/**
 * The one EC2 client of ipamd. Every call goes through `call()`, which
 *  - waits for a client-side rate limiter (mutating and describe calls have separate buckets, like EC2),
 *  - retries throttling, 5xx and network failures under the SDK's standard retry strategy (capped
 *    exponential backoff with jitter, a retry quota shared by all calls so an outage is not amplified),
 *    and NotFound on an ENI it created moments ago (EC2's eventual consistency),
 *  - counts and times every attempt into the reference's metrics,
 *  - turns failures into Ec2Error with an actionable message.
 * Replies are validated and normalised into the small shapes below; the rest of ipamd never sees SDK types.
 */
import { randomUUID } from 'node:crypto';
import type { Filter, NetworkInterface } from '@aws-sdk/client-ec2';
import { StandardRetryStrategy } from '@smithy/core/retry';
import type { StandardRetryBackoffStrategy } from '@smithy/types';
import PQueue from 'p-queue';
import { limitsFromInstanceTypeInfo } from '../../lib/instance-types/from-ec2.js';
import type { InstanceTypeLimits } from '../../lib/instance-types/index.js';
import type { Logger } from '../log.js';
import { awsApiLatency, ec2ApiErrors, ec2ApiRequests, ec2Throttled } from '../metrics.js';
import type { Ec2Transport } from './ec2-wire.js';

export type { Ec2Transport };

import { type CallContext, classifyEc2Error, Ec2Error } from './errors.js';
import { Ec2QueryClient, regionalEndpoint } from './query-client.js';
import { assertCidr, assertEniId, assertIpv4, assertMac } from './validate.js';

export type AddressUnit = 'ip' | 'prefix';

export interface Ec2Eni {
  id: string;
  mac: string;
  status: string;
  subnetId: string;
  vpcId: string;
  primaryIp: string;
  secondaryIps: string[];
  prefixes: string[];
  attachment: { id: string; instanceId: string; deviceIndex: number } | null;
  tags: Record<string, string>;
  securityGroups: string[];
}

export interface Ec2Subnet {
  id: string;
  cidr: string;
  availableAddresses: number;
  tags: Record<string, string>;
}

export interface Ec2ApiOptions {
  maxAttempts: number;
  /** Calls per second for mutating and for describe calls. */
  mutatingRate: number;
  describeRate: number;
  log: Logger;
  /** The delay between attempts; by default the SDK's (tests pass NO_BACKOFF). */
  backoff?: StandardRetryBackoffStrategy;
}

/** Retries without waiting (unit tests). */
export const NO_BACKOFF: StandardRetryBackoffStrategy = {
  computeNextBackoffDelay: () => 0,
  setDelayBase: () => undefined,
};

/** The Query-protocol client pointed at AWS_EC2_ENDPOINT when set; it makes one attempt, retries are ours. */
export function createEc2Transport(
  region: string,
  endpoint: string | null,
  fips = false,
  opts: { timeoutMs?: number } = {},
): Ec2QueryClient {
  return new Ec2QueryClient({
    region,
    endpoint: endpoint ?? regionalEndpoint(region, { fips }),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

/** How long after creating an ENI a NotFound naming it is taken for eventual consistency. */
export const FRESH_ENI_WINDOW_MS = 120_000;

export class Ec2Api {
  /** ENI id -> when this daemon created it (pruned past FRESH_ENI_WINDOW_MS). */
  private readonly createdAt = new Map<string, number>();
  private readonly mutating: PQueue;
  private readonly describing: PQueue;
  /** The SDK's standard retry strategy: capped exponential backoff with full jitter and a retry quota. */
  private readonly retries: StandardRetryStrategy;

  constructor(
    private readonly ec2: Ec2Transport,
    private readonly opts: Ec2ApiOptions,
  ) {
    // EC2 refills its buckets continuously; a strict rolling window keeps us under the refill rate.
    this.mutating = new PQueue({ interval: 1000, intervalCap: Math.max(1, opts.mutatingRate), strict: true });
    this.describing = new PQueue({
      interval: 1000,
      intervalCap: Math.max(1, opts.describeRate),
      strict: true,
    });
    this.retries = new StandardRetryStrategy({
      maxAttempts: opts.maxAttempts,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
  }

  /** Runs one EC2 API call with rate limiting, retries, metrics and error mapping. */
  async call<T>(api: string, mutating: boolean, send: () => Promise<T>, ctx: CallContext = {}): Promise<T> {
    const queue = mutating ? this.mutating : this.describing;
    if (ctx.eniId !== undefined && ctx.justCreated === undefined)
      ctx = { ...ctx, justCreated: this.isFresh(ctx.eniId) };
    let token = await this.retries.acquireInitialRetryToken('ec2');
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        ec2ApiRequests.inc({ fn: api });
        const result = (await queue.add(send)) as T;
        awsApiLatency.observe({ api, error: 'false', status: '200' }, performance.now() - started);
        this.retries.recordSuccess(token);
        return result;
      } catch (raw) {
        const err = classifyEc2Error(api, raw, ctx);
        const status = (raw as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        awsApiLatency.observe(
          { api, error: 'true', status: String(status ?? 0) },
          performance.now() - started,
        );
        ec2ApiErrors.inc({ fn: api });
        if (err.kind === 'throttled') ec2Throttled.inc({ fn: api });
        if (!err.retryable) {
          this.opts.log.warn({ api, code: err.code, kind: err.kind, attempt }, err.message);
          throw err;
        }
        // Throttling backs off from a longer base: the bucket refills slowly, hammering it delays everyone.
        // The SDK counts 5xx and connection failures as transient; both are retried.
        // A new ENI's id propagates in seconds (EC2 advises retrying from "a couple of seconds"): the
        // longer base keeps the few attempts from being spent inside the window.
        const errorType =
          err.kind === 'throttled' || err.kind === 'not_yet_visible' ? 'THROTTLING' : 'TRANSIENT';
        const waitStarted = performance.now();
        try {
          token = await this.retries.refreshRetryTokenForRetry(token, { errorType, error: raw as never });
        } catch {
          // Out of attempts, or out of retry quota: many calls failing at once means EC2 (or the path to it)
          // is in trouble, and retrying them all would only add load.
          const why =
            attempt >= this.opts.maxAttempts
              ? `gave up after ${attempt} attempts`
              : 'gave up: the retry quota is spent (many EC2 calls are failing)';
          this.opts.log.warn({ api, code: err.code, kind: err.kind, attempt }, `${err.message}; ${why}`);
          throw err;
        }
        const detail = (raw as Error | undefined)?.message;
        const waitedMs = Math.round(performance.now() - waitStarted);
        this.opts.log.info({ api, code: err.code, attempt, waitedMs, detail }, err.message);
      }
    }
  }

  /** True while `eniId` is one this daemon created within FRESH_ENI_WINDOW_MS. */
  private isFresh(eniId: string): boolean {
    const now = Date.now();
    for (const [id, at] of this.createdAt) if (now - at > FRESH_ENI_WINDOW_MS) this.createdAt.delete(id);
    return this.createdAt.has(eniId);
  }

  async describeNetworkInterfaces(ids: string[]): Promise<Ec2Eni[]> {
    if (ids.length === 0) return [];
    const out = await this.call(
      'DescribeNetworkInterfaces',
      false,
      () => this.ec2.send('DescribeNetworkInterfaces', { NetworkInterfaceIds: ids }),
      { justCreated: ids.some((id) => this.isFresh(id)) },
    );
    return (out.NetworkInterfaces ?? []).map(toEni);
  }

  /** ENIs matching filters, following pagination. */
  async findNetworkInterfaces(filters: Filter[]): Promise<Ec2Eni[]> {
    const enis: Ec2Eni[] = [];
    let token: string | undefined;
    do {
      const out = await this.call('DescribeNetworkInterfaces', false, () =>
        this.ec2.send('DescribeNetworkInterfaces', { Filters: filters, NextToken: token, MaxResults: 1000 }),
      );
      enis.push(...(out.NetworkInterfaces ?? []).map(toEni));
      token = out.NextToken;
    } while (token);
    return enis;
  }

  async createNetworkInterface(p: {
    subnetId: string;
    securityGroups: string[];
    unit: AddressUnit;
    count: number;
    description: string;
    tags: Record<string, string>;
  }): Promise<Ec2Eni> {
    // One token for every attempt: a retry after a lost reply gets the first ENI back, not a second one.
    const clientToken = randomUUID();
    const out = await this.call(
      'CreateNetworkInterface',
      true,
      () =>
        this.ec2.send('CreateNetworkInterface', {
          ClientToken: clientToken,
          SubnetId: p.subnetId,
          Groups: p.securityGroups,
          Description: p.description,
          ...(p.count > 0
            ? p.unit === 'ip'
              ? { SecondaryPrivateIpAddressCount: p.count }
              : { Ipv4PrefixCount: p.count }
            : {}),
          TagSpecifications: [{ ResourceType: 'network-interface', Tags: tagList(p.tags) }],
        }),
      { subnetId: p.subnetId },
    );
    if (!out.NetworkInterface) throw badReply('CreateNetworkInterface', 'no NetworkInterface in the reply');
    const eni = toEni(out.NetworkInterface);
    this.createdAt.set(eni.id, Date.now());
    return eni;
  }

  async attachNetworkInterface(eniId: string, instanceId: string, deviceIndex: number): Promise<string> {
    const out = await this.call(
      'AttachNetworkInterface',
      true,
      () =>
        this.ec2.send('AttachNetworkInterface', {
          NetworkInterfaceId: eniId,
          InstanceId: instanceId,
          DeviceIndex: deviceIndex,
          NetworkCardIndex: 0,
        }),
      { eniId },
    );
    if (!out.AttachmentId) throw badReply('AttachNetworkInterface', 'no AttachmentId in the reply');
    return out.AttachmentId;
  }

  async setDeleteOnTermination(eniId: string, attachmentId: string): Promise<void> {
    await this.call(
      'ModifyNetworkInterfaceAttribute',
      true,
      () =>
        this.ec2.send('ModifyNetworkInterfaceAttribute', {
          NetworkInterfaceId: eniId,
          Attachment: { AttachmentId: attachmentId, DeleteOnTermination: true },
        }),
      { eniId },
    );
  }

  async detachNetworkInterface(attachmentId: string, eniId: string): Promise<void> {
    await this.call(
      'DetachNetworkInterface',
      true,
      () => this.ec2.send('DetachNetworkInterface', { AttachmentId: attachmentId }),
      { eniId },
    );
  }

  async deleteNetworkInterface(eniId: string): Promise<void> {
    await this.call(
      'DeleteNetworkInterface',
      true,
      () => this.ec2.send('DeleteNetworkInterface', { NetworkInterfaceId: eniId }),
      { eniId },
    );
    this.createdAt.delete(eniId); // gone: a later NotFound is the truth
  }

  /** Adds `count` secondary IPs or /28 prefixes to an ENI; returns the new ones. */
  async assignAddresses(
    eniId: string,
    subnetId: string,
    unit: AddressUnit,
    count: number,
  ): Promise<string[]> {
    const out = await this.call(
      'AssignPrivateIpAddresses',
      true,
      () =>
        this.ec2.send('AssignPrivateIpAddresses', {
          NetworkInterfaceId: eniId,
          ...(unit === 'ip' ? { SecondaryPrivateIpAddressCount: count } : { Ipv4PrefixCount: count }),
        }),
      { eniId, subnetId },
    );
    const got =
      unit === 'ip'
        ? (out.AssignedPrivateIpAddresses ?? []).map((a) =>
            assertIpv4(a.PrivateIpAddress, 'assigned address'),
          )
        : (out.AssignedIpv4Prefixes ?? []).map((p) => assertCidr(p.Ipv4Prefix, 'assigned prefix'));
    if (got.length === 0) throw badReply('AssignPrivateIpAddresses', `no ${unit} assigned to ${eniId}`);
    return got;
  }

  async unassignAddresses(eniId: string, unit: AddressUnit, items: string[]): Promise<void> {
    if (items.length === 0) return;
    await this.call(
      'UnassignPrivateIpAddresses',
      true,
      () =>
        this.ec2.send('UnassignPrivateIpAddresses', {
          NetworkInterfaceId: eniId,
          ...(unit === 'ip' ? { PrivateIpAddresses: items } : { Ipv4Prefixes: items }),
        }),
      { eniId },
    );
  }

  async createTags(resourceIds: string[], tags: Record<string, string>): Promise<void> {
    if (resourceIds.length === 0) return;
    await this.call(
      'CreateTags',
      true,
      () => this.ec2.send('CreateTags', { Resources: resourceIds, Tags: tagList(tags) }),
      { justCreated: resourceIds.some((id) => this.isFresh(id)) },
    );
  }

  async describeSubnets(filters: Filter[]): Promise<Ec2Subnet[]> {
    const out = await this.call('DescribeSubnets', false, () =>
      this.ec2.send('DescribeSubnets', { Filters: filters }),
    );
    return (out.Subnets ?? []).map((s) => ({
      id: requireString(s.SubnetId, 'DescribeSubnets', 'SubnetId'),
      cidr: assertCidr(s.CidrBlock, 'subnet CIDR'),
      availableAddresses: s.AvailableIpAddressCount ?? 0,
      tags: tagMap(s.Tags),
    }));
  }

  /** Limits of a type the generated table does not know, validated like the calculator does. */
  async describeInstanceType(name: string): Promise<InstanceTypeLimits | null> {
    const out = await this.call('DescribeInstanceTypes', false, () =>
      this.ec2.send('DescribeInstanceTypes', { InstanceTypes: [name as never] }),
    );
    const info = out.InstanceTypes?.[0];
    return info ? limitsFromInstanceTypeInfo(info) : null;
  }

  /** Waits for in-flight calls (used at shutdown). */
  async drain(): Promise<void> {
    await Promise.all([this.mutating.onIdle(), this.describing.onIdle()]);
  }
}

function badReply(api: string, what: string): Ec2Error {
  return new Ec2Error('other', api, 'BadReply', `${api} returned a malformed reply: ${what}`);
}

function requireString(v: string | undefined, api: string, field: string): string {
  if (typeof v !== 'string' || v === '') throw badReply(api, `missing ${field}`);
  return v;
}

function tagList(tags: Record<string, string>): { Key: string; Value: string }[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

function tagMap(tags: { Key?: string; Value?: string }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key) out[t.Key] = t.Value ?? '';
  return out;
}

/** Validates and normalises one SDK NetworkInterface. */
export function toEni(n: NetworkInterface): Ec2Eni {
  const api = 'DescribeNetworkInterfaces';
  const id = assertEniId(n.NetworkInterfaceId, 'NetworkInterfaceId');
  const primaryIp = assertIpv4(n.PrivateIpAddress, `${id} primary address`);
  const att = n.Attachment;
  return {
    id,
    mac: assertMac(n.MacAddress, `${id} MAC`),
    status: n.Status ?? 'unknown',
    subnetId: requireString(n.SubnetId, api, `${id} SubnetId`),
    vpcId: n.VpcId ?? '',
    primaryIp,
    secondaryIps: (n.PrivateIpAddresses ?? [])
      .filter((a) => !a.Primary)
      .map((a) => assertIpv4(a.PrivateIpAddress, `${id} secondary address`)),
    prefixes: (n.Ipv4Prefixes ?? []).map((p) => assertCidr(p.Ipv4Prefix, `${id} prefix`)),
    attachment:
      att?.AttachmentId && att.InstanceId && typeof att.DeviceIndex === 'number'
        ? { id: att.AttachmentId, instanceId: att.InstanceId, deviceIndex: att.DeviceIndex }
        : null,
    tags: tagMap(n.TagSet),
    securityGroups: (n.Groups ?? []).map((g) => g.GroupId ?? '').filter((g) => g !== ''),
  };
}
