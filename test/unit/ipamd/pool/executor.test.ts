import {
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DeleteNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DetachNetworkInterfaceCommand,
  EC2Client,
  EC2ServiceException,
  ModifyNetworkInterfaceAttributeCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { Ec2Api, NO_BACKOFF } from '../../../../ipamd/aws/ec2.js';
import type { Imds, ImdsEni } from '../../../../ipamd/aws/imds.js';
import { Datastore, type EniInfo } from '../../../../ipamd/datastore/datastore.js';
import { type HostNetwork, PoolExecutor } from '../../../../ipamd/pool/executor.js';
import { PoolManager } from '../../../../ipamd/pool/manager.js';
import { SubnetPicker } from '../../../../ipamd/pool/subnets.js';
import { sdkTransport } from '../aws/sdk-transport.js';

const ec2Mock = mockClient(EC2Client);
const log = pino({ level: 'silent' });
const NEW_MAC = '0a:00:00:00:00:05';

function fail(name: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

function rig(
  opts: {
    unmanagedDevices?: number[];
    primaryIps?: number;
    setupFails?: boolean;
    onStray?: (deviceNumber: number) => void;
    imdsFailures?: number;
  } = {},
) {
  const ec2 = new Ec2Api(sdkTransport(new EC2Client({ region: 'us-west-2' })), {
    maxAttempts: 2,
    mutatingRate: 1000,
    describeRate: 1000,
    log,
    backoff: NO_BACKOFF,
  });
  const ds = new Datastore(0);
  ds.addEni({
    id: 'eni-00',
    mac: '0a:00:00:00:00:01',
    deviceNumber: 0,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.1.0/24',
    primaryIp: '10.0.1.10',
    attachmentId: null,
    isPrimary: true,
    forPods: true,
  });
  ds.addIps(
    'eni-00',
    Array.from({ length: opts.primaryIps ?? 9 }, (_, i) => `10.0.1.${20 + i}`),
  );
  const imdsEni: ImdsEni = {
    mac: NEW_MAC,
    id: 'eni-05',
    deviceNumber: 1,
    networkCard: 0,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.1.0/24',
    vpcId: 'vpc-1',
    vpcCidrs: ['10.0.0.0/16'],
    primaryIp: '10.0.1.50',
    secondaryIps: [],
    prefixes: [],
    securityGroups: ['sg-1'],
  };
  let imdsFailures = opts.imdsFailures ?? 0;
  const imds = {
    macs: async () => {
      if (imdsFailures-- > 0) throw new Error('IMDS request timed out');
      return [NEW_MAC];
    },
    eni: async () => imdsEni,
  } as unknown as Imds;
  const setUp: EniInfo[] = [];
  const host: HostNetwork = {
    setupEni: async (e) => {
      if (opts.setupFails) throw new Error('RTNETLINK answers: Operation not permitted');
      setUp.push(e);
    },
    teardownEni: async () => undefined,
  };
  const subnets = new SubnetPicker({
    primary: { subnetId: 'subnet-1', securityGroups: ['sg-1'] },
    customSubnet: null,
    discovery: null,
    ec2,
    log,
  });
  const executor = new PoolExecutor({
    ec2,
    imds,
    ds,
    identity: {
      instanceId: 'i-01',
      instanceType: 'm5.large',
      availabilityZone: 'us-west-2a',
      region: 'us-west-2',
      primaryMac: '0a:00:00:00:00:01',
      primaryIp: '10.0.1.10',
    },
    subnets,
    host,
    log,
    eniTags: { 'node.k8s.amazonaws.com/instance_id': 'i-01', team: 'net' },
    pollMs: 1,
    ...(opts.onStray ? { onStrayAttachment: opts.onStray } : {}),
  });
  const pool = new PoolManager({
    ds,
    executor,
    subnets,
    log,
    mode: 'ip',
    targets: { warmEni: 1, warmIp: 0, minIp: 0, warmPrefix: 0 },
    limits: { maxEnis: 3, slotsPerEni: 9, maxPods: 29 },
    shrinkIntervalMs: 30_000,
    disableProvisioning: false,
    unmanagedDeviceNumbers: () => opts.unmanagedDevices ?? [],
  });
  return { ds, pool, setUp, subnets };
}

const created = {
  NetworkInterface: {
    NetworkInterfaceId: 'eni-05',
    MacAddress: NEW_MAC,
    Status: 'available' as const,
    SubnetId: 'subnet-1',
    PrivateIpAddress: '10.0.1.50',
    PrivateIpAddresses: [
      { PrivateIpAddress: '10.0.1.50', Primary: true },
      ...Array.from({ length: 9 }, (_, i) => ({ PrivateIpAddress: `10.0.1.${60 + i}`, Primary: false })),
    ],
  },
};

describe('PoolExecutor via PoolManager', () => {
  beforeEach(() => ec2Mock.reset());

  it('creates an ENI with its addresses and tags, attaches at the first free index, sets DeleteOnTermination', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves(created);
    ec2Mock.on(AttachNetworkInterfaceCommand).resolves({ AttachmentId: 'eni-attach-5' });
    ec2Mock.on(ModifyNetworkInterfaceAttributeCommand).resolves({});
    // IMDS failing twice while the new ENI appears is waited out, not fatal.
    const { ds, pool, setUp } = rig({ unmanagedDevices: [1], imdsFailures: 2 });
    ds.assign({ network: 'n', containerId: 'c', ifName: 'eth0' });
    await pool.tick();
    const create = ec2Mock.commandCalls(CreateNetworkInterfaceCommand)[0]!.args[0].input;
    expect(create).toMatchObject({
      SubnetId: 'subnet-1',
      Groups: ['sg-1'],
      SecondaryPrivateIpAddressCount: 9,
    });
    const tags = create.TagSpecifications![0]!.Tags!;
    expect(tags).toContainEqual({ Key: 'node.k8s.amazonaws.com/instance_id', Value: 'i-01' });
    expect(tags).toContainEqual({ Key: 'team', Value: 'net' });
    expect(tags.find((t) => t.Key === 'node.k8s.amazonaws.com/createdAt')?.Value).toMatch(/^\d{4}-/);
    expect(ec2Mock.commandCalls(AttachNetworkInterfaceCommand)[0]!.args[0].input).toMatchObject({
      DeviceIndex: 2,
      InstanceId: 'i-01',
    });
    expect(ec2Mock.commandCalls(ModifyNetworkInterfaceAttributeCommand)[0]!.args[0].input.Attachment).toEqual(
      {
        AttachmentId: 'eni-attach-5',
        DeleteOnTermination: true,
      },
    );
    // Host networking before the addresses become assignable.
    expect(setUp.map((e) => [e.id, e.deviceNumber, e.subnetCidr])).toEqual([['eni-05', 2, '10.0.1.0/24']]);
    expect(ds.stats()).toEqual({ total: 18, assigned: 1, cooling: 0, ready: 17 });
  });

  it('deletes the new ENI when attaching fails, and reports the error', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves(created);
    ec2Mock.on(AttachNetworkInterfaceCommand).rejects(fail('AttachmentLimitExceeded'));
    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    const { ds, pool } = rig();
    ds.assign({ network: 'n', containerId: 'c', ifName: 'eth0' });
    await pool.tick();
    expect(ec2Mock.commandCalls(DeleteNetworkInterfaceCommand)[0]!.args[0].input.NetworkInterfaceId).toBe(
      'eni-05',
    );
    expect(pool.status.lastError).toMatch(/cannot take another ENI/);
    expect(ds.allEnis()).toHaveLength(1);
  });

  it('detaches and deletes an attached ENI whose host setup fails, so it cannot hold its device index', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves(created);
    ec2Mock.on(AttachNetworkInterfaceCommand).resolves({ AttachmentId: 'eni-attach-5' });
    ec2Mock.on(ModifyNetworkInterfaceAttributeCommand).resolves({});
    ec2Mock.on(DetachNetworkInterfaceCommand).resolves({});
    ec2Mock.on(DescribeNetworkInterfacesCommand).resolves({
      NetworkInterfaces: [{ ...created.NetworkInterface, Status: 'available' }],
    });
    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    const { ds, pool } = rig({ setupFails: true });
    ds.assign({ network: 'n', containerId: 'c', ifName: 'eth0' });
    await pool.tick();
    expect(ec2Mock.commandCalls(DetachNetworkInterfaceCommand)[0]!.args[0].input.AttachmentId).toBe(
      'eni-attach-5',
    );
    expect(ec2Mock.commandCalls(DeleteNetworkInterfaceCommand)[0]!.args[0].input.NetworkInterfaceId).toBe(
      'eni-05',
    );
    expect(pool.status.lastError).toMatch(/Operation not permitted/);
    expect(ds.allEnis().map((e) => e.id)).toEqual(['eni-00']);
  });

  it('asks for a reconciliation when EC2 says the device index holds an ENI ipamd does not know', async () => {
    ec2Mock.on(CreateNetworkInterfaceCommand).resolves(created);
    ec2Mock
      .on(AttachNetworkInterfaceCommand)
      .rejects(
        fail("InvalidParameterValue: Instance 'i-01' already has an interface attached at device index '1'."),
      );
    ec2Mock.on(DeleteNetworkInterfaceCommand).resolves({});
    const asked: number[] = [];
    const { ds, pool } = rig({ onStray: (d) => asked.push(d) });
    ds.assign({ network: 'n', containerId: 'c', ifName: 'eth0' });
    await pool.tick();
    expect(asked).toEqual([1]); // the index the pool must skip until reconciliation adopts the ENI
    expect(ec2Mock.commandCalls(DeleteNetworkInterfaceCommand)).toHaveLength(1);
  });

  it('a full subnet backs off: the next tick does not call EC2 again', async () => {
    ec2Mock.on(AssignPrivateIpAddressesCommand).rejects(fail('InsufficientFreeAddressesInSubnet'));
    ec2Mock.on(DescribeSubnetsCommand).resolves({ Subnets: [] });
    const { pool, subnets } = rig({ primaryIps: 0 });
    await pool.tick();
    expect(subnets.isBlocked('subnet-1')).toBe(true);
    await pool.tick();
    expect(ec2Mock.commandCalls(AssignPrivateIpAddressesCommand)).toHaveLength(1);
    expect(ec2Mock.commandCalls(CreateNetworkInterfaceCommand)).toHaveLength(0);
    expect(pool.status.blocked).toMatchObject({
      permanent: false,
      reason: expect.stringMatching(/subnet subnet-1 has no free addresses \(retrying in \d+s\)/),
    });
  });
});
