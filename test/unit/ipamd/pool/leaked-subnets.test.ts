import {
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Api, NO_BACKOFF } from '../../../../ipamd/aws/ec2.js';
import { cleanLeakedEnis, scheduleSweeps } from '../../../../ipamd/pool/leaked.js';
import {
  excludedSubnets,
  SubnetPicker,
  subnetExcluded,
  subnetUsable,
} from '../../../../ipamd/pool/subnets.js';
import { sdkTransport } from '../aws/sdk-transport.js';

const ec2Mock = mockClient(EC2Client);
const log = pino({ level: 'silent' });
const api = () =>
  new Ec2Api(sdkTransport(new EC2Client({ region: 'us-west-2' })), {
    maxAttempts: 2,
    mutatingRate: 1000,
    describeRate: 1000,
    log,
    backoff: NO_BACKOFF,
  });

const NOW = Date.parse('2026-01-01T01:00:00Z');
function available(id: string, createdAt?: string, cluster?: string) {
  return {
    NetworkInterfaceId: id,
    MacAddress: '0a:00:00:00:00:09',
    Status: 'available' as const,
    SubnetId: 'subnet-1',
    PrivateIpAddress: '10.0.1.50',
    TagSet: [
      { Key: 'node.k8s.amazonaws.com/instance_id', Value: 'i-0dead' },
      ...(createdAt ? [{ Key: 'node.k8s.amazonaws.com/createdAt', Value: createdAt }] : []),
      ...(cluster ? [{ Key: 'cluster.k8s.amazonaws.com/name', Value: cluster }] : []),
    ],
  };
}

describe('cleanLeakedEnis', () => {
  beforeEach(() => ec2Mock.reset());

  it('cluster scope: deletes available ENIs older than the grace period, dates undated ones, keeps young ones', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({
      NetworkInterfaces: [
        available('eni-0a1', '2026-01-01T00:50:00Z', 'prod'),
        available('eni-0b2', '2026-01-01T00:58:00Z', 'prod'),
        available('eni-0c3', undefined, 'prod'),
      ],
    });
    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    ec2Mock.on(CreateTagsCommand).resolves({});
    const deleted = await cleanLeakedEnis({
      ec2: api(),
      instanceId: 'i-0live',
      clusterName: 'prod',
      scope: 'cluster',
      vpcId: 'vpc-1',
      maxAgeMs: 300_000,
      log,
      now: () => NOW,
    });
    expect(deleted).toEqual(['eni-0a1']);
    const filters = ec2Mock.commandCalls(DescribeNetworkInterfacesCommand)[0]!.args[0].input.Filters;
    expect(filters).toContainEqual({ Name: 'status', Values: ['available'] });
    expect(filters).toContainEqual({ Name: 'tag:cluster.k8s.amazonaws.com/name', Values: ['prod'] });
    expect(filters).toContainEqual({ Name: 'vpc-id', Values: ['vpc-1'] });
    expect(ec2Mock.commandCalls(CreateTagsCommand)[0]!.args[0].input.Resources).toEqual(['eni-0c3']);
  });

  it('by default a node sweeps only its own ENIs, even with CLUSTER_NAME set and whatever EC2 returns', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({
      NetworkInterfaces: [available('eni-0a1', '2026-01-01T00:00:00Z', 'prod')], // owned by i-0dead
    });
    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    const deleted = await cleanLeakedEnis({
      ec2: api(),
      instanceId: 'i-0live',
      clusterName: 'prod',
      maxAgeMs: 1,
      log,
      now: () => NOW,
    });
    expect(deleted).toEqual([]);
    expect(ec2Mock.commandCalls(DeleteNetworkInterfaceCommand)).toHaveLength(0);
    const filters = ec2Mock.commandCalls(DescribeNetworkInterfacesCommand)[0]!.args[0].input.Filters;
    expect(filters).toContainEqual({ Name: 'tag:node.k8s.amazonaws.com/instance_id', Values: ['i-0live'] });
    expect(filters).not.toContainEqual(
      expect.objectContaining({ Name: 'tag:cluster.k8s.amazonaws.com/name' }),
    );
  });
});

describe('scheduleSweeps', () => {
  it('waits a fresh random 0..max delay before every sweep, the interval between sweeps', async () => {
    const timers: { fn: () => void; ms: number }[] = [];
    const draws = [0.5, 0.1, 0.9];
    let sweeps = 0;
    const stop = scheduleSweeps({
      intervalMs: 3_600_000,
      startDelayMaxMs: 300_000,
      random: () => draws.shift() ?? 0,
      sweep: async () => {
        sweeps++;
      },
      setTimer: (fn, ms) => {
        timers.push({ fn, ms });
        return {};
      },
      clearTimer: () => undefined,
    });
    expect(timers.map((t) => t.ms)).toEqual([150_000]); // first sweep: the start delay only
    timers[0]!.fn();
    await new Promise((r) => setImmediate(r));
    expect(sweeps).toBe(1);
    expect(timers.map((t) => t.ms)).toEqual([150_000, 3_630_000]);
    timers[1]!.fn();
    await new Promise((r) => setImmediate(r));
    expect(timers.map((t) => t.ms)).toEqual([150_000, 3_630_000, 3_870_000]);
    stop();
    timers[2]!.fn();
    await new Promise((r) => setImmediate(r));
    expect(timers).toHaveLength(3); // stopped: no further sweep scheduled
  });

  it('spreads a fleet: nodes started together draw different first sweeps', () => {
    const firsts = Array.from({ length: 50 }, () => {
      let first = -1;
      scheduleSweeps({
        intervalMs: 3_600_000,
        startDelayMaxMs: 300_000,
        sweep: async () => undefined,
        setTimer: (_fn, ms) => {
          if (first < 0) first = ms;
          return {};
        },
      })();
      return first;
    });
    expect(new Set(firsts).size).toBeGreaterThan(40);
    expect(Math.max(...firsts)).toBeLessThan(300_000);
  });
});

describe('SubnetPicker', () => {
  beforeEach(() => ec2Mock.reset());

  it('prefers the discovered subnet with most free addresses and backs off full ones exponentially', async () => {
    ec2Mock.on(DescribeSubnetsCommand).resolves({
      Subnets: [
        { SubnetId: 'subnet-a', CidrBlock: '10.0.1.0/24', AvailableIpAddressCount: 10 },
        {
          SubnetId: 'subnet-b',
          CidrBlock: '10.0.2.0/24',
          AvailableIpAddressCount: 200,
          Tags: [{ Key: 'kubernetes.io/role/cni', Value: '1' }],
        },
        // Untagged: not for ENIs, however many addresses it has.
        { SubnetId: 'subnet-c', CidrBlock: '10.0.3.0/24', AvailableIpAddressCount: 999 },
      ],
    });
    let now = 0;
    const p = new SubnetPicker({
      primary: { subnetId: 'subnet-a', securityGroups: ['sg-1'] },
      customSubnet: null,
      discovery: { vpcId: 'vpc-1', availabilityZone: 'us-west-2a' },
      ec2: api(),
      log,
      now: () => now,
      backoffBaseMs: 1000,
    });
    await p.refreshIfStale();
    const filters = ec2Mock.commandCalls(DescribeSubnetsCommand)[0]!.args[0].input.Filters;
    // v1.22+: every subnet of the zone is read; the tags decide.
    expect(filters).toEqual([
      { Name: 'vpc-id', Values: ['vpc-1'] },
      { Name: 'availability-zone', Values: ['us-west-2a'] },
    ]);
    expect(p.pick()).toEqual({ subnetId: 'subnet-b', securityGroups: ['sg-1'] });
    p.markFull('subnet-b', 'subnet subnet-b has no free addresses');
    expect(p.pick()!.subnetId).toBe('subnet-a');
    p.markFull('subnet-a', 'subnet subnet-a has no free addresses');
    expect(p.pick()).toBeNull();
    expect(p.blockedReason()).toMatch(/subnet subnet-b has no free addresses \(retrying in 1s\)/);
    now = 1001;
    expect(p.isBlocked('subnet-b')).toBe(false);
    p.markFull('subnet-b', 'again');
    now = 2500;
    // Second failure: 2 s backoff.
    expect(p.isBlocked('subnet-b')).toBe(true);
    p.markOk('subnet-b');
    expect(p.isBlocked('subnet-b')).toBe(false);
  });

  it('custom networking uses only the ENIConfig subnet and never describes subnets', async () => {
    const p = new SubnetPicker({
      primary: { subnetId: 'subnet-a', securityGroups: ['sg-1'] },
      customSubnet: { subnetId: 'subnet-pods', securityGroups: ['sg-pods'] },
      discovery: { vpcId: 'vpc-1', availabilityZone: 'us-west-2a' },
      ec2: api(),
      log,
    });
    await p.refreshIfStale();
    expect(ec2Mock.commandCalls(DescribeSubnetsCommand)).toHaveLength(0);
    expect(p.pick()).toEqual({ subnetId: 'subnet-pods', securityGroups: ['sg-pods'] });
  });
});

describe('subnet tags (v1.22+)', () => {
  beforeEach(() => ec2Mock.reset());
  const role = (v: string) => ({ 'kubernetes.io/role/cni': v });
  const cluster = (name: string) => ({ [`cni.networking.k8s.aws/cluster/${name}`]: '1' });

  it.each([
    ['node subnet, untagged', {}, true, null, true],
    ['node subnet, role=0', role('0'), true, null, false],
    ['other subnet, untagged', {}, false, null, false],
    ['other subnet, role=1', role('1'), false, null, true],
    ['other subnet, any other role value', role('shared'), false, null, true],
    ['other subnet, role=0', role('0'), false, null, false],
    ['for this cluster', { ...role('1'), ...cluster('prod') }, false, 'prod', true],
    ['for another cluster', { ...role('1'), ...cluster('dev') }, false, 'prod', false],
    [
      'for several clusters, this one among them',
      { ...role('1'), ...cluster('dev'), ...cluster('prod') },
      false,
      'prod',
      true,
    ],
    ['cluster tags and no CLUSTER_NAME', { ...role('1'), ...cluster('dev') }, false, null, true],
    ['node subnet reserved for another cluster', { ...role('1'), ...cluster('dev') }, true, 'prod', false],
  ] as const)('%s', (_what, tags, isPrimary, clusterName, usable) => {
    expect(subnetUsable(tags, isPrimary, clusterName)).toBe(usable);
  });

  it('excludes attached ENIs only where the tags say so (untagged ENIConfig subnets stay in use)', () => {
    expect(subnetExcluded({}, 'prod')).toBe(false);
    expect(subnetExcluded(role('0'), null)).toBe(true);
    expect(subnetExcluded({ ...role('1'), ...cluster('dev') }, 'prod')).toBe(true);
    expect(subnetExcluded({ ...role('1'), ...cluster('prod') }, 'prod')).toBe(false);
  });

  it("never puts an ENI in the node's own subnet when it is tagged role=0", async () => {
    ec2Mock.on(DescribeSubnetsCommand).resolves({
      Subnets: [
        {
          SubnetId: 'subnet-a',
          CidrBlock: '10.0.1.0/24',
          AvailableIpAddressCount: 100,
          Tags: [{ Key: 'kubernetes.io/role/cni', Value: '0' }],
        },
        {
          SubnetId: 'subnet-b',
          CidrBlock: '10.0.2.0/24',
          AvailableIpAddressCount: 5,
          Tags: [{ Key: 'kubernetes.io/role/cni', Value: '1' }],
        },
      ],
    });
    const p = new SubnetPicker({
      primary: { subnetId: 'subnet-a', securityGroups: ['sg-1'] },
      customSubnet: null,
      discovery: { vpcId: 'vpc-1', availabilityZone: 'us-west-2a' },
      ec2: api(),
      log,
    });
    await p.refreshIfStale();
    expect(p.pick()).toEqual({ subnetId: 'subnet-b', securityGroups: ['sg-1'] });
  });

  it('with discovery off still checks the node subnet, and says why nothing can be created', async () => {
    ec2Mock.on(DescribeSubnetsCommand).resolves({
      Subnets: [
        {
          SubnetId: 'subnet-a',
          CidrBlock: '10.0.1.0/24',
          AvailableIpAddressCount: 100,
          Tags: [{ Key: 'kubernetes.io/role/cni', Value: '0' }],
        },
      ],
    });
    const p = new SubnetPicker({
      primary: { subnetId: 'subnet-a', securityGroups: ['sg-1'] },
      customSubnet: null,
      discovery: null,
      vpc: { vpcId: 'vpc-1', availabilityZone: 'us-west-2a' },
      ec2: api(),
      log,
    });
    await p.refreshIfStale();
    const filters = ec2Mock.commandCalls(DescribeSubnetsCommand)[0]!.args[0].input.Filters;
    expect(filters).toContainEqual({ Name: 'subnet-id', Values: ['subnet-a'] });
    expect(p.pick()).toBeNull();
    expect(p.blockedReason()).toMatch(/kubernetes\.io\/role\/cni=0/);
  });

  it("names the attached ENIs' excluded subnets in one call, and none when EC2 cannot say", async () => {
    ec2Mock.on(DescribeSubnetsCommand).resolves({
      Subnets: [
        {
          SubnetId: 'subnet-a',
          CidrBlock: '10.0.1.0/24',
          Tags: [{ Key: 'kubernetes.io/role/cni', Value: '0' }],
        },
        { SubnetId: 'subnet-b', CidrBlock: '10.0.2.0/24' },
      ],
    });
    expect(await excludedSubnets(api(), ['subnet-a', 'subnet-b', 'subnet-a'], null, log)).toEqual(
      new Set(['subnet-a']),
    );
    expect(ec2Mock.commandCalls(DescribeSubnetsCommand)[0]!.args[0].input.Filters).toEqual([
      { Name: 'subnet-id', Values: ['subnet-a', 'subnet-b'] },
    ]);
    ec2Mock.reset();
    ec2Mock.on(DescribeSubnetsCommand).rejects(new Error('UnauthorizedOperation'));
    expect(await excludedSubnets(api(), ['subnet-a'], null, log)).toEqual(new Set());
  });
});
