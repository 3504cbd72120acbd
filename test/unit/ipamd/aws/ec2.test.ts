import {
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DeleteNetworkInterfaceCommand,
  DescribeInstanceTypesCommand,
  DescribeNetworkInterfacesCommand,
  EC2Client,
  EC2ServiceException,
  type NetworkInterface,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Api, NO_BACKOFF } from '../../../../ipamd/aws/ec2.js';
import { Ec2Error } from '../../../../ipamd/aws/errors.js';
import { ec2ApiErrors, ec2ApiRequests, ec2Throttled, registry } from '../../../../ipamd/metrics.js';
import { sdkTransport } from './sdk-transport.js';

const ec2Mock = mockClient(EC2Client);
const log = pino({ level: 'silent' });

function sdkError(name: string, status: number): EC2ServiceException {
  return new EC2ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: `${name} happened`,
  });
}

function api(opts: Partial<{ maxAttempts: number; mutatingRate: number }> = {}): Ec2Api {
  return new Ec2Api(sdkTransport(new EC2Client({ region: 'us-west-2' })), {
    maxAttempts: opts.maxAttempts ?? 5,
    mutatingRate: opts.mutatingRate ?? 1000,
    describeRate: 1000,
    log,
    backoff: NO_BACKOFF,
  });
}

async function counter(metric: typeof ec2ApiRequests, fn: string): Promise<number> {
  const m = await metric.get();
  return m.values.find((v) => v.labels.fn === fn)?.value ?? 0;
}

const eniReply: NetworkInterface = {
  NetworkInterfaceId: 'eni-0a1',
  MacAddress: '0A:00:00:00:00:01',
  Status: 'in-use' as const,
  SubnetId: 'subnet-01',
  VpcId: 'vpc-1',
  PrivateIpAddress: '10.0.1.10',
  PrivateIpAddresses: [
    { PrivateIpAddress: '10.0.1.10', Primary: true },
    { PrivateIpAddress: '10.0.1.11', Primary: false },
  ],
  Ipv4Prefixes: [{ Ipv4Prefix: '10.0.1.32/28' }],
  Attachment: { AttachmentId: 'eni-attach-1', InstanceId: 'i-01', DeviceIndex: 1 },
  TagSet: [{ Key: 'node.k8s.amazonaws.com/no_manage', Value: 'true' }],
  Groups: [{ GroupId: 'sg-1' }],
};

describe('Ec2Api', () => {
  beforeEach(() => {
    ec2Mock.reset();
    registry.resetMetrics();
  });

  it('retries RequestLimitExceeded and 5xx, then succeeds, counting every attempt', async () => {
    ec2Mock
      .on(AssignPrivateIpAddressesCommand)
      .rejectsOnce(sdkError('RequestLimitExceeded', 503))
      .rejectsOnce(sdkError('InternalError', 500))
      .resolves({ AssignedPrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.12' }] });
    const got = await api().assignAddresses('eni-0a1', 'subnet-01', 'ip', 1);
    expect(got).toEqual(['10.0.1.12']);
    expect(ec2Mock.commandCalls(AssignPrivateIpAddressesCommand)).toHaveLength(3);
    expect(await counter(ec2ApiRequests, 'AssignPrivateIpAddresses')).toBe(3);
    expect(await counter(ec2ApiErrors, 'AssignPrivateIpAddresses')).toBe(2);
    expect(await counter(ec2Throttled, 'AssignPrivateIpAddresses')).toBe(1);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(
      /awscni_aws_api_latency_ms_count\{api="AssignPrivateIpAddresses",error="false",status="200"\} 1/,
    );
  });

  it('gives up after maxAttempts with a throttling message', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(sdkError('RequestLimitExceeded', 503));
    const err = await api({ maxAttempts: 3 })
      .describeNetworkInterfaces(['eni-0a1'])
      .catch((e) => e);
    expect(err).toBeInstanceOf(Ec2Error);
    expect(err.kind).toBe('throttled');
    expect(err.message).toBe('EC2 throttled DescribeNetworkInterfaces (RequestLimitExceeded), retrying');
    expect(ec2Mock.commandCalls(DescribeNetworkInterfacesCommand)).toHaveLength(3);
  });

  it('stops retrying once the retry quota is spent, and earns it back with successes', async () => {
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(sdkError('InternalError', 500));
    const ec2 = api({ maxAttempts: 5 });
    const attempts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = ec2Mock.commandCalls(DescribeNetworkInterfacesCommand).length;
      await ec2.describeNetworkInterfaces(['eni-0a1']).catch(() => undefined);
      attempts.push(ec2Mock.commandCalls(DescribeNetworkInterfacesCommand).length - before);
    }
    // EC2 failing everything: the first calls retry in full, then each call gets one attempt.
    expect(attempts[0]).toBe(5);
    expect(attempts.slice(-5)).toEqual([1, 1, 1, 1, 1]);
    expect(attempts.reduce((a, b) => a + b, 0)).toBeLessThan(20 * 5);
    // EC2 answers again: successes refill the quota until a failing call may retry again.
    ec2Mock.reset();
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({ NetworkInterfaces: [eniReply] });
    for (let i = 0; i < 40; i++) await ec2.describeNetworkInterfaces(['eni-0a1']);
    ec2Mock.reset();
    ec2Mock
      .on(DescribeNetworkInterfacesCommand)
      .rejectsOnce(sdkError('InternalError', 500))
      .resolves({ NetworkInterfaces: [eniReply] });
    await expect(ec2.describeNetworkInterfaces(['eni-0a1'])).resolves.toHaveLength(1);
  });

  it('does not retry a full subnet and names the subnet', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).rejects(sdkError('InsufficientFreeAddressesInSubnet', 400));
    const err = await api()
      .createNetworkInterface({
        subnetId: 'subnet-0ff',
        securityGroups: ['sg-1'],
        unit: 'ip',
        count: 9,
        description: 'd',
        tags: {},
      })
      .catch((e) => e);
    expect(err.kind).toBe('subnet_full');
    expect(err.message).toBe('subnet subnet-0ff has no free addresses');
    expect(ec2Mock.commandCalls(CreateNetworkInterfaceCommand)).toHaveLength(1);
  });

  it('maps InsufficientCidrBlocks and UnauthorizedOperation to actionable errors', async () => {
    ec2Mock
      .on(AssignPrivateIpAddressesCommand)
      .rejectsOnce(sdkError('InsufficientCidrBlocks', 400))
      .rejectsOnce(sdkError('UnauthorizedOperation', 403));
    const a = await api()
      .assignAddresses('eni-0a1', 'subnet-01', 'prefix', 1)
      .catch((e) => e);
    expect(a.kind).toBe('no_cidr_block');
    expect(a.message).toMatch(/subnet subnet-01 has no free contiguous \/28 block/);
    const b = await api()
      .assignAddresses('eni-0a1', 'subnet-01', 'prefix', 1)
      .catch((e) => e);
    expect(b.kind).toBe('unauthorized');
    expect(b.message).toMatch(/grant it to the node's IAM role/);
  });

  it('sends addresses with CreateNetworkInterface and tags in the same call', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves({ NetworkInterface: eniReply });
    const eni = await api().createNetworkInterface({
      subnetId: 'subnet-01',
      securityGroups: ['sg-1'],
      unit: 'prefix',
      count: 2,
      description: 'aws-K8S-i-01',
      tags: { 'node.k8s.amazonaws.com/instance_id': 'i-01' },
    });
    const input = ec2Mock.commandCalls(CreateNetworkInterfaceCommand)[0]!.args[0].input;
    expect(input.Ipv4PrefixCount).toBe(2);
    expect(input.SecondaryPrivateIpAddressCount).toBeUndefined();
    expect(input.TagSpecifications).toEqual([
      {
        ResourceType: 'network-interface',
        Tags: [{ Key: 'node.k8s.amazonaws.com/instance_id', Value: 'i-01' }],
      },
    ]);
    expect(eni).toMatchObject({
      id: 'eni-0a1',
      mac: '0a:00:00:00:00:01',
      primaryIp: '10.0.1.10',
      secondaryIps: ['10.0.1.11'],
      prefixes: ['10.0.1.32/28'],
      attachment: { id: 'eni-attach-1', instanceId: 'i-01', deviceIndex: 1 },
      tags: { 'node.k8s.amazonaws.com/no_manage': 'true' },
    });
  });

  it('retries a create with the same ClientToken, so a lost reply cannot leave a second ENI', async () => {
    ec2Mock
      .on(CreateNetworkInterfaceCommand)
      .rejectsOnce(sdkError('InternalError', 500))
      .resolves({ NetworkInterface: eniReply });
    const create = () =>
      api().createNetworkInterface({
        subnetId: 'subnet-01',
        securityGroups: ['sg-1'],
        unit: 'ip',
        count: 1,
        description: 'aws-K8S-i-01',
        tags: {},
      });
    await create();
    await create();
    const tokens = ec2Mock
      .commandCalls(CreateNetworkInterfaceCommand)
      .map((c) => c.args[0].input.ClientToken);
    expect(tokens).toHaveLength(3);
    expect(tokens[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(tokens[1]).toBe(tokens[0]); // the retry
    expect(tokens[2]).not.toBe(tokens[0]); // the next create
  });

  // "Eventual consistency in the Amazon EC2 API": a call naming a just-created resource may answer
  // NotFound until its id has propagated; such a NotFound is retried, any other is believed.
  it('retries NotFound on an ENI it just created (eventual consistency), not on any other', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves({ NetworkInterface: eniReply });
    ec2Mock
      .on(AttachNetworkInterfaceCommand)
      .rejectsOnce(sdkError('InvalidNetworkInterfaceID.NotFound', 400))
      .rejectsOnce(sdkError('InvalidNetworkInterfaceID.NotFound', 400))
      .resolves({ AttachmentId: 'eni-attach-1' });
    const ec2 = api();
    const created = await ec2.createNetworkInterface({
      subnetId: 'subnet-01',
      securityGroups: ['sg-1'],
      unit: 'ip',
      count: 1,
      description: 'aws-K8S-i-01',
      tags: {},
    });
    expect(await ec2.attachNetworkInterface(created.id, 'i-01', 1)).toBe('eni-attach-1');
    expect(ec2Mock.commandCalls(AttachNetworkInterfaceCommand)).toHaveLength(3);

    ec2Mock.on(AssignPrivateIpAddressesCommand).rejects(sdkError('InvalidNetworkInterfaceID.NotFound', 400));
    const err = await ec2.assignAddresses('eni-0other', 'subnet-01', 'ip', 1).catch((e: Ec2Error) => e);
    expect(err).toMatchObject({ kind: 'not_found' });
    expect(ec2Mock.commandCalls(AssignPrivateIpAddressesCommand)).toHaveLength(1);

    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    await ec2.deleteNetworkInterface(created.id);
    ec2Mock.on(DescribeNetworkInterfacesCommand).rejects(sdkError('InvalidNetworkInterfaceID.NotFound', 400));
    // Deleted: a NotFound now is the truth, not propagation.
    await expect(ec2.describeNetworkInterfaces([created.id])).rejects.toMatchObject({ kind: 'not_found' });
    expect(ec2Mock.commandCalls(DescribeNetworkInterfacesCommand)).toHaveLength(1);
  });

  it('rejects malformed replies with a message naming the field', async () => {
    ec2Mock
      .on(DescribeNetworkInterfacesCommand)
      .resolves({ NetworkInterfaces: [{ ...eniReply, MacAddress: 'zz' }] });
    await expect(api().describeNetworkInterfaces(['eni-0a1'])).rejects.toThrow(/malformed eni-0a1 MAC: "zz"/);
  });

  it('describes a type the table does not know, validated', async () => {
    ec2Mock.on(DescribeInstanceTypesCommand).resolves({
      InstanceTypes: [
        {
          InstanceType: 'zz9.large' as never,
          Hypervisor: 'nitro',
          VCpuInfo: { DefaultVCpus: 2 },
          NetworkInfo: { MaximumNetworkInterfaces: 3, Ipv4AddressesPerInterface: 12 },
        },
      ],
    });
    expect(await api().describeInstanceType('zz9.large')).toMatchObject({
      name: 'zz9.large',
      enis: 3,
      ipv4PerEni: 12,
    });
    ec2Mock.on(DescribeInstanceTypesCommand).resolves({ InstanceTypes: [] });
    expect(await api().describeInstanceType('zz9.large')).toBeNull();
  });

  it('rate-limits mutating calls client-side', async () => {
    ec2Mock
      .on(AssignPrivateIpAddressesCommand)
      .resolves({ AssignedPrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.12' }] });
    const a = api({ mutatingRate: 4 });
    const started = Date.now();
    await Promise.all(Array.from({ length: 6 }, () => a.assignAddresses('eni-0a1', 'subnet-01', 'ip', 1)));
    // 4 per second: the 5th and 6th wait for the window to roll.
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('classifyEc2Error', () => {
  it('treats InvalidParameterValue "no sufficient free addresses" on assign as a full subnet', async () => {
    const { classifyEc2Error } = await import('../../../../ipamd/aws/errors.js');
    const err = new EC2ServiceException({
      name: 'InvalidParameterValue',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
      message: "There aren't sufficient free Ipv4 addresses or prefixes",
    });
    const c = classifyEc2Error('AssignPrivateIpAddresses', err, { subnetId: 'subnet-9' });
    expect(c.kind).toBe('subnet_full');
    expect(c.message).toBe('subnet subnet-9 has no free addresses');
    expect(c.retryable).toBe(false);
    const other = classifyEc2Error('X', { name: 'ECONNREFUSED', message: 'connect' });
    expect(other.kind).toBe('network');
    expect(other.retryable).toBe(true);
  });
});
