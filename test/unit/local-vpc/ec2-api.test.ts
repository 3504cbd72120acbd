// The real @aws-sdk/client-ec2 against the emulator: every action, its fields, and EC2's errors.
import {
  type _InstanceType,
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DescribeTagsCommand,
  DescribeVpcsCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  ModifyInstanceMetadataOptionsCommand,
  ModifyNetworkInterfaceAttributeCommand,
  paginateDescribeInstanceTypes,
  paginateDescribeNetworkInterfaces,
  RunInstancesCommand,
  TerminateInstancesCommand,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ec2Fixture, errorOf, startFixture } from './helpers.js';

let f: Ec2Fixture;
let ec2: EC2Client;

beforeAll(async () => {
  f = await startFixture();
  ec2 = f.client();
});
afterAll(async () => {
  await f.close();
});

async function launch(instanceType = 'm5.large'): Promise<{ instanceId: string; primaryEniId: string }> {
  const r = await ec2.send(
    new RunInstancesCommand({
      ImageId: 'ami-12345678',
      InstanceType: instanceType as 'm5.large',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: f.subnetId,
    }),
  );
  const i = r.Instances![0]!;
  return { instanceId: i.InstanceId!, primaryEniId: i.NetworkInterfaces![0]!.NetworkInterfaceId! };
}

async function createEni(extra: Record<string, unknown> = {}) {
  const r = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: f.subnetId, ...extra }));
  return r.NetworkInterface!;
}

async function describeEni(id: string) {
  const r = await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [id] }));
  return r.NetworkInterfaces![0]!;
}

describe('DescribeInstanceTypes', () => {
  it('returns the limits from lib/instance-types with network cards, hypervisor and vCPUs', async () => {
    const r = await ec2.send(
      new DescribeInstanceTypesCommand({ InstanceTypes: ['m5.large', 'c6in.32xlarge', 'c4.large'] }),
    );
    const byName = Object.fromEntries(r.InstanceTypes!.map((t) => [t.InstanceType, t]));
    expect(byName['m5.large']).toMatchObject({
      Hypervisor: 'nitro',
      BareMetal: false,
      VCpuInfo: { DefaultVCpus: 2 },
      NetworkInfo: {
        MaximumNetworkInterfaces: 3,
        Ipv4AddressesPerInterface: 10,
        MaximumNetworkCards: 1,
        DefaultNetworkCardIndex: 0,
        NetworkCards: [{ NetworkCardIndex: 0, MaximumNetworkInterfaces: 3 }],
      },
    });
    expect(byName['c6in.32xlarge']!.NetworkInfo!.NetworkCards).toHaveLength(2);
    expect(byName['c4.large']!.Hypervisor).toBe('xen');
  });

  it('rejects unknown types and pages the full listing', async () => {
    const err = await errorOf(() =>
      ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: ['m5.giant' as _InstanceType] })),
    );
    expect(err.name).toBe('InvalidInstanceType');
    expect(err.$metadata?.httpStatusCode).toBe(400);
    let pages = 0;
    let total = 0;
    for await (const page of paginateDescribeInstanceTypes({ client: ec2 }, {})) {
      pages++;
      total += page.InstanceTypes!.length;
    }
    expect(pages).toBeGreaterThan(5);
    expect(total).toBeGreaterThan(500);
    const nitroMetal = await ec2.send(
      new DescribeInstanceTypesCommand({
        Filters: [{ Name: 'bare-metal', Values: ['true'] }],
        MaxResults: 100,
      }),
    );
    expect(nitroMetal.InstanceTypes!.every((t) => t.BareMetal)).toBe(true);
  });
});

describe('instances', () => {
  it('RunInstances, DescribeInstances (ids and filters) and TerminateInstances', async () => {
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12345678',
        InstanceType: 't3.medium',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: f.subnetId,
        TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'Name', Value: 'node-1' }] }],
      }),
    );
    const instanceId = run.Instances![0]!.InstanceId!;
    const primaryEniId = run.Instances![0]!.NetworkInterfaces![0]!.NetworkInterfaceId!;
    const d = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(d.Reservations![0]!.Instances![0]!.Tags).toEqual([{ Key: 'Name', Value: 'node-1' }]);
    const inst = d.Reservations![0]!.Instances![0]!;
    expect(inst).toMatchObject({
      InstanceId: instanceId,
      InstanceType: 't3.medium',
      State: { Code: 16, Name: 'running' },
      SubnetId: f.subnetId,
      VpcId: f.vpcId,
      Placement: { AvailabilityZone: 'us-west-2a' },
    });
    expect(inst.NetworkInterfaces![0]).toMatchObject({
      NetworkInterfaceId: primaryEniId,
      Attachment: { DeviceIndex: 0, NetworkCardIndex: 0, DeleteOnTermination: true, Status: 'attached' },
    });
    const byFilter = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: 'network-interface.network-interface-id', Values: [primaryEniId] }],
      }),
    );
    expect(byFilter.Reservations!.map((r) => r.Instances![0]!.InstanceId)).toEqual([instanceId]);

    const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    expect(t.TerminatingInstances![0]).toMatchObject({
      InstanceId: instanceId,
      PreviousState: { Name: 'running' },
      CurrentState: { Code: 48, Name: 'terminated' },
    });
    const after = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [
          { Name: 'instance-state-name', Values: ['terminated'] },
          { Name: 'instance-id', Values: [instanceId] },
        ],
      }),
    );
    expect(after.Reservations).toHaveLength(1);
    expect(after.Reservations![0]!.Instances![0]!.NetworkInterfaces ?? []).toHaveLength(0);
  });

  it('answers unknown and malformed instance ids with EC2 codes', async () => {
    expect(
      (await errorOf(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] }))))
        .name,
    ).toBe('InvalidInstanceID.NotFound');
    expect(
      (await errorOf(() => ec2.send(new TerminateInstancesCommand({ InstanceIds: ['bogus'] })))).name,
    ).toBe('InvalidInstanceID.Malformed');
  });
});

describe('instance metadata options (the IMDS hop limit)', () => {
  const hopLimit = async (instanceId: string) =>
    (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }))).Reservations![0]!
      .Instances![0]!.MetadataOptions!.HttpPutResponseHopLimit;

  it("defaults to EC2's 1, RunInstances MetadataOptions sets it, ModifyInstanceMetadataOptions changes it", async () => {
    const { instanceId } = await launch();
    expect(await hopLimit(instanceId)).toBe(1);
    const run = await ec2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12345678',
        InstanceType: 'm5.large',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: f.subnetId,
        MetadataOptions: { HttpPutResponseHopLimit: 2 },
      }),
    );
    expect(run.Instances![0]!.MetadataOptions).toMatchObject({
      HttpPutResponseHopLimit: 2,
      State: 'applied',
    });
    const m = await ec2.send(
      new ModifyInstanceMetadataOptionsCommand({ InstanceId: instanceId, HttpPutResponseHopLimit: 3 }),
    );
    expect(m).toMatchObject({
      InstanceId: instanceId,
      InstanceMetadataOptions: { HttpPutResponseHopLimit: 3, State: 'pending' },
    });
    expect(await hopLimit(instanceId)).toBe(3);
    // An absent option keeps its value.
    await ec2.send(new ModifyInstanceMetadataOptionsCommand({ InstanceId: instanceId }));
    expect(await hopLimit(instanceId)).toBe(3);
  });

  it('refuses a hop limit outside 1-64, an unknown instance and a terminated one, as EC2 does', async () => {
    const { instanceId } = await launch();
    for (const bad of [0, 65]) {
      const err = await errorOf(() =>
        ec2.send(
          new ModifyInstanceMetadataOptionsCommand({ InstanceId: instanceId, HttpPutResponseHopLimit: bad }),
        ),
      );
      expect(err.name).toBe('InvalidParameterValue');
      expect(err.message).toContain('HttpPutResponseHopLimit');
    }
    expect(
      (
        await errorOf(() =>
          ec2.send(
            new ModifyInstanceMetadataOptionsCommand({
              InstanceId: 'i-0123456789abcdef0',
              HttpPutResponseHopLimit: 2,
            }),
          ),
        )
      ).name,
    ).toBe('InvalidInstanceID.NotFound');
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    expect(
      (
        await errorOf(() =>
          ec2.send(
            new ModifyInstanceMetadataOptionsCommand({ InstanceId: instanceId, HttpPutResponseHopLimit: 2 }),
          ),
        )
      ).name,
    ).toBe('IncorrectInstanceState');
    expect(
      (
        await errorOf(() =>
          ec2.send(
            new RunInstancesCommand({
              ImageId: 'ami-1',
              InstanceType: 'm5.large',
              MinCount: 1,
              MaxCount: 1,
              SubnetId: f.subnetId,
              MetadataOptions: { HttpPutResponseHopLimit: 100 },
            }),
          ),
        )
      ).name,
    ).toBe('InvalidParameterValue');
  });

  it('tells the fabric (metadata-options-changed)', () => {
    const i = f.state.runInstance({ instanceType: 'm5.large', subnetId: f.subnetId });
    const seen: string[] = [];
    const h = (e: { instanceId: string }) => seen.push(e.instanceId);
    f.state.on('metadata-options-changed', h);
    f.state.modifyInstanceMetadataOptions(i.id, { httpPutResponseHopLimit: 2 });
    f.state.off('metadata-options-changed', h);
    expect(seen).toEqual([i.id]);
  });
});

describe('DescribeSubnets / DescribeVpcs', () => {
  it('filters by tag, VPC and zone and reports AvailableIpAddressCount', async () => {
    const other = f.state.createSubnet({
      vpcId: f.vpcId,
      cidr: '10.0.2.0/24',
      az: 'us-west-2b',
      tags: { 'kubernetes.io/role/cni': '1' },
    });
    const byTag = await ec2.send(
      new DescribeSubnetsCommand({ Filters: [{ Name: 'tag-key', Values: ['kubernetes.io/role/cni'] }] }),
    );
    expect(byTag.Subnets!.map((s) => s.SubnetId)).toEqual([other.id]);
    expect(byTag.Subnets![0]).toMatchObject({
      AvailabilityZoneId: 'usw2-az2',
      CidrBlock: '10.0.2.0/24',
      AvailabilityZone: 'us-west-2b',
      AvailableIpAddressCount: 251,
      VpcId: f.vpcId,
    });
    const byZone = await ec2.send(
      new DescribeSubnetsCommand({
        Filters: [
          { Name: 'vpc-id', Values: [f.vpcId] },
          { Name: 'availability-zone', Values: ['us-west-2a'] },
        ],
      }),
    );
    expect(byZone.Subnets!.map((s) => s.SubnetId)).toEqual([f.subnetId]);

    const before = byZone.Subnets![0]!.AvailableIpAddressCount!;
    await createEni({ SecondaryPrivateIpAddressCount: 3 });
    const after = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [f.subnetId] }));
    expect(after.Subnets![0]!.AvailableIpAddressCount).toBe(before - 4);

    const vpcs = await ec2.send(new DescribeVpcsCommand({ VpcIds: [f.vpcId] }));
    expect(vpcs.Vpcs![0]).toMatchObject({
      CidrBlock: '10.0.0.0/16',
      CidrBlockAssociationSet: [{ CidrBlock: '10.0.0.0/16' }],
    });
  });

  it('rejects unknown subnets and unknown filter names', async () => {
    expect(
      (await errorOf(() => ec2.send(new DescribeSubnetsCommand({ SubnetIds: ['subnet-0123456789abcdef0'] }))))
        .name,
    ).toBe('InvalidSubnetID.NotFound');
    const err = await errorOf(() =>
      ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'colour', Values: ['red'] }] })),
    );
    expect(err.name).toBe('InvalidParameterValue');
    expect(err.message).toContain("'colour'");
  });
});

describe('CreateNetworkInterface', () => {
  it('takes description, groups, explicit and counted addresses, and tags', async () => {
    const sg = f.state.createSecurityGroup({ vpcId: f.vpcId });
    const eni = await createEni({
      Description: 'aws-K8S-i-123',
      Groups: [sg],
      PrivateIpAddresses: [
        { PrivateIpAddress: '10.0.1.200', Primary: true },
        { PrivateIpAddress: '10.0.1.201', Primary: false },
      ],
      TagSpecifications: [
        { ResourceType: 'network-interface', Tags: [{ Key: 'cluster.k8s.amazonaws.com/name', Value: 'c1' }] },
      ],
    });
    expect(eni).toMatchObject({
      Description: 'aws-K8S-i-123',
      Status: 'available',
      SubnetId: f.subnetId,
      VpcId: f.vpcId,
      PrivateIpAddress: '10.0.1.200',
      Groups: [{ GroupId: sg }],
      TagSet: [{ Key: 'cluster.k8s.amazonaws.com/name', Value: 'c1' }],
    });
    expect(eni.NetworkInterfaceId).toMatch(/^eni-[0-9a-f]{17}$/);
    expect(eni.PrivateIpAddresses!.map((p) => [p.PrivateIpAddress, p.Primary])).toEqual([
      ['10.0.1.200', true],
      ['10.0.1.201', false],
    ]);
    const counted = await createEni({ PrivateIpAddress: '10.0.1.210', SecondaryPrivateIpAddressCount: 2 });
    expect(counted.PrivateIpAddresses!.map((p) => p.Primary)).toEqual([true, false, false]);
    expect(counted.PrivateIpAddress).toBe('10.0.1.210');
    const both = await errorOf(() =>
      createEni({
        PrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.220', Primary: false }],
        SecondaryPrivateIpAddressCount: 1,
      }),
    );
    expect(both.name).toBe('InvalidParameterCombination');
  });

  it('creates with prefixes by count and by value', async () => {
    const byCount = await createEni({ Ipv4PrefixCount: 2 });
    expect(byCount.Ipv4Prefixes).toHaveLength(2);
    for (const p of byCount.Ipv4Prefixes!) expect(p.Ipv4Prefix).toMatch(/^10\.0\.1\.\d+\/28$/);
    const byValue = await createEni({ Ipv4Prefixes: [{ Ipv4Prefix: '10.0.1.224/28' }] });
    expect(byValue.Ipv4Prefixes).toEqual([{ Ipv4Prefix: '10.0.1.224/28' }]);
    const err = await errorOf(() => createEni({ Ipv4Prefixes: [{ Ipv4Prefix: '10.0.1.232/29' }] }));
    expect(err.name).toBe('InvalidParameterValue');
  });

  it('answers missing and bad parameters', async () => {
    expect(await errorOf(() => ec2.send(new CreateNetworkInterfaceCommand({} as never)))).toMatchObject({
      name: 'MissingParameter',
    });
    expect((await errorOf(() => createEni({ Groups: ['sg-0123456789abcdef0'] }))).name).toBe(
      'InvalidGroup.NotFound',
    );
    expect((await errorOf(() => createEni({ PrivateIpAddress: '10.0.1.999' }))).name).toBe(
      'InvalidParameterValue',
    );
    expect(
      (
        await errorOf(() =>
          ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: 'subnet-0123456789abcdef0' })),
        )
      ).name,
    ).toBe('InvalidSubnetID.NotFound');
    expect(
      (await errorOf(() => createEni({ SecondaryPrivateIpAddressCount: 1, Ipv4PrefixCount: 1 }))).name,
    ).toBe('InvalidParameterCombination');
  });
});

describe('attach, detach, modify, delete', () => {
  it('runs the ENI life cycle with EC2 status changes', async () => {
    const { instanceId } = await launch();
    const eni = await createEni();
    const a = await ec2.send(
      new AttachNetworkInterfaceCommand({
        NetworkInterfaceId: eni.NetworkInterfaceId!,
        InstanceId: instanceId,
        DeviceIndex: 1,
        NetworkCardIndex: 0,
      }),
    );
    expect(a.AttachmentId).toMatch(/^eni-attach-/);
    expect(a.NetworkCardIndex).toBe(0);
    let d = await describeEni(eni.NetworkInterfaceId!);
    expect(d).toMatchObject({
      Status: 'in-use',
      Attachment: {
        AttachmentId: a.AttachmentId,
        InstanceId: instanceId,
        DeviceIndex: 1,
        DeleteOnTermination: false,
        Status: 'attached',
      },
    });
    expect(d.Attachment!.AttachTime).toBeInstanceOf(Date);

    await ec2.send(
      new ModifyNetworkInterfaceAttributeCommand({
        NetworkInterfaceId: eni.NetworkInterfaceId!,
        Attachment: { AttachmentId: a.AttachmentId!, DeleteOnTermination: true },
      }),
    );
    const sg = f.state.createSecurityGroup({ vpcId: f.vpcId });
    await ec2.send(
      new ModifyNetworkInterfaceAttributeCommand({
        NetworkInterfaceId: eni.NetworkInterfaceId!,
        Groups: [sg],
      }),
    );
    d = await describeEni(eni.NetworkInterfaceId!);
    expect(d.Attachment!.DeleteOnTermination).toBe(true);
    expect(d.Groups!.map((g) => g.GroupId)).toEqual([sg]);

    const inUse = await errorOf(() =>
      ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni.NetworkInterfaceId! })),
    );
    expect(inUse).toMatchObject({
      name: 'InvalidParameterValue',
      message: `Network interface '${eni.NetworkInterfaceId}' is currently in use.`,
    });

    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: a.AttachmentId! }));
    expect((await describeEni(eni.NetworkInterfaceId!)).Status).toBe('available');
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni.NetworkInterfaceId! }));
    const gone = await errorOf(() => describeEni(eni.NetworkInterfaceId!));
    expect(gone).toMatchObject({
      name: 'InvalidNetworkInterfaceID.NotFound',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('attaches on a second network card of a multi-card type', async () => {
    const { instanceId } = await launch('c6in.32xlarge');
    const eni = await createEni();
    const r = await ec2.send(
      new AttachNetworkInterfaceCommand({
        NetworkInterfaceId: eni.NetworkInterfaceId!,
        InstanceId: instanceId,
        DeviceIndex: 1,
        NetworkCardIndex: 1,
      }),
    );
    expect(r.NetworkCardIndex).toBe(1);
    expect((await describeEni(eni.NetworkInterfaceId!)).Attachment).toMatchObject({
      NetworkCardIndex: 1,
      DeviceIndex: 1,
    });
    const other = await createEni();
    const bad = await errorOf(() =>
      ec2.send(
        new AttachNetworkInterfaceCommand({
          NetworkInterfaceId: other.NetworkInterfaceId!,
          InstanceId: instanceId,
          DeviceIndex: 2,
          NetworkCardIndex: 5,
        }),
      ),
    );
    expect(bad).toMatchObject({
      name: 'InvalidParameterValue',
      message: expect.stringContaining('Network card index 5'),
    });
  });

  it('modifies description and source/dest check', async () => {
    const eni = await createEni();
    const id = eni.NetworkInterfaceId!;
    await ec2.send(
      new ModifyNetworkInterfaceAttributeCommand({
        NetworkInterfaceId: id,
        Description: { Value: 'renamed' },
      }),
    );
    await ec2.send(
      new ModifyNetworkInterfaceAttributeCommand({
        NetworkInterfaceId: id,
        SourceDestCheck: { Value: false },
      }),
    );
    expect(await describeEni(id)).toMatchObject({ Description: 'renamed', SourceDestCheck: false });
    const none = await errorOf(() =>
      ec2.send(new ModifyNetworkInterfaceAttributeCommand({ NetworkInterfaceId: id })),
    );
    expect(none.name).toBe('InvalidParameterCombination');
  });

  it('answers the attach/detach errors', async () => {
    const { instanceId, primaryEniId } = await launch('t3.medium');
    const attach = (eniId: string, deviceIndex: number) =>
      ec2.send(
        new AttachNetworkInterfaceCommand({
          NetworkInterfaceId: eniId,
          InstanceId: instanceId,
          DeviceIndex: deviceIndex,
        }),
      );
    const e1 = await createEni();
    const e2 = await createEni();
    const e3 = await createEni();
    expect((await errorOf(() => attach(e1.NetworkInterfaceId!, 0))).message).toBe(
      `Instance '${instanceId}' already has an interface attached at device index '0'.`,
    );
    await attach(e1.NetworkInterfaceId!, 1);
    expect((await errorOf(() => attach(e1.NetworkInterfaceId!, 3))).name).toBe(
      'InvalidNetworkInterface.InUse',
    );
    await attach(e2.NetworkInterfaceId!, 2);
    expect(await errorOf(() => attach(e3.NetworkInterfaceId!, 3))).toMatchObject({
      name: 'AttachmentLimitExceeded',
    });
    expect((await errorOf(() => attach('eni-0123456789abcdef0', 3))).name).toBe(
      'InvalidNetworkInterfaceID.NotFound',
    );
    expect((await errorOf(() => attach('nope', 3))).name).toBe('InvalidNetworkInterfaceId.Malformed'); // sic: EC2's error-code list spells it so

    const primary = await describeEni(primaryEniId);
    expect(
      (
        await errorOf(() =>
          ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: primary.Attachment!.AttachmentId! })),
        )
      ).name,
    ).toBe('OperationNotPermitted');
    const forced = await errorOf(() =>
      ec2.send(
        new DetachNetworkInterfaceCommand({ AttachmentId: primary.Attachment!.AttachmentId!, Force: true }),
      ),
    );
    expect(forced.name).toBe('OperationNotPermitted');
    expect(
      (
        await errorOf(() =>
          ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: 'eni-attach-0123456789abcdef0' })),
        )
      ).name,
    ).toBe('InvalidAttachmentID.NotFound');
  });
});

describe('Assign / UnassignPrivateIpAddresses', () => {
  it('assigns and unassigns addresses by count and by value', async () => {
    const { primaryEniId } = await launch();
    const byCount = await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: primaryEniId,
        SecondaryPrivateIpAddressCount: 3,
      }),
    );
    expect(byCount.NetworkInterfaceId).toBe(primaryEniId);
    expect(byCount.AssignedPrivateIpAddresses).toHaveLength(3);
    const byValue = await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: primaryEniId,
        PrivateIpAddresses: ['10.0.1.150'],
      }),
    );
    expect(byValue.AssignedPrivateIpAddresses).toEqual([{ PrivateIpAddress: '10.0.1.150' }]);
    let d = await describeEni(primaryEniId);
    expect(d.PrivateIpAddresses).toHaveLength(5);
    expect(d.PrivateIpAddresses![0]!.Primary).toBe(true);

    await ec2.send(
      new UnassignPrivateIpAddressesCommand({
        NetworkInterfaceId: primaryEniId,
        PrivateIpAddresses: ['10.0.1.150'],
      }),
    );
    d = await describeEni(primaryEniId);
    expect(d.PrivateIpAddresses!.map((p) => p.PrivateIpAddress)).not.toContain('10.0.1.150');
    const notMine = await errorOf(() =>
      ec2.send(
        new UnassignPrivateIpAddressesCommand({
          NetworkInterfaceId: primaryEniId,
          PrivateIpAddresses: ['10.0.1.151'],
        }),
      ),
    );
    expect(notMine.name).toBe('InvalidParameterValue');
    const primaryIp = d.PrivateIpAddress!;
    expect(
      (
        await errorOf(() =>
          ec2.send(
            new UnassignPrivateIpAddressesCommand({
              NetworkInterfaceId: primaryEniId,
              PrivateIpAddresses: [primaryIp],
            }),
          ),
        )
      ).name,
    ).toBe('InvalidParameterValue');
  });

  it('moves an address between ENIs only with AllowReassignment', async () => {
    const a = await createEni({
      PrivateIpAddresses: [
        { PrivateIpAddress: '10.0.1.160', Primary: true },
        { PrivateIpAddress: '10.0.1.161' },
      ],
    });
    const b = await createEni();
    const assign = (allow?: boolean) =>
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: b.NetworkInterfaceId!,
          PrivateIpAddresses: ['10.0.1.161'],
          AllowReassignment: allow,
        }),
      );
    expect((await errorOf(() => assign())).name).toBe('InvalidIPAddress.InUse');
    await assign(true);
    expect(
      (await describeEni(b.NetworkInterfaceId!)).PrivateIpAddresses!.map((p) => p.PrivateIpAddress),
    ).toContain('10.0.1.161');
    expect(
      (await describeEni(a.NetworkInterfaceId!)).PrivateIpAddresses!.map((p) => p.PrivateIpAddress),
    ).toEqual(['10.0.1.160']);
  });

  it('assigns and unassigns prefixes, sharing slots with addresses', async () => {
    const { primaryEniId } = await launch(); // m5.large: 10 slots, 1 used by the primary address
    const r = await ec2.send(
      new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: primaryEniId, Ipv4PrefixCount: 2 }),
    );
    expect(r.AssignedIpv4Prefixes).toHaveLength(2);
    const prefixes = r.AssignedIpv4Prefixes!.map((p) => p.Ipv4Prefix!);
    expect((await describeEni(primaryEniId)).Ipv4Prefixes!.map((p) => p.Ipv4Prefix)).toEqual(prefixes);
    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: primaryEniId,
        SecondaryPrivateIpAddressCount: 7,
      }),
    );
    const full = await errorOf(() =>
      ec2.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: primaryEniId, Ipv4PrefixCount: 1 })),
    );
    expect(full).toMatchObject({ name: 'PrivateIpAddressLimitExceeded', $metadata: { httpStatusCode: 400 } });
    await ec2.send(
      new UnassignPrivateIpAddressesCommand({
        NetworkInterfaceId: primaryEniId,
        Ipv4Prefixes: [prefixes[0]!],
      }),
    );
    expect((await describeEni(primaryEniId)).Ipv4Prefixes!.map((p) => p.Ipv4Prefix)).toEqual([prefixes[1]]);
    // the freed /28 can be asked for by value
    const back = await ec2.send(
      new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: primaryEniId, Ipv4Prefixes: [prefixes[0]!] }),
    );
    expect(back.AssignedIpv4Prefixes).toEqual([{ Ipv4Prefix: prefixes[0] }]);
  });

  it('fails prefixes in a fragmented subnet that still has many free addresses', async () => {
    const frag = f.state.createSubnet({ vpcId: f.vpcId, cidr: '10.0.10.0/26', az: 'us-west-2a' });
    // One address in each of the two /28s not touched by reserved addresses.
    const holder = (
      await ec2.send(
        new CreateNetworkInterfaceCommand({
          SubnetId: frag.id,
          PrivateIpAddresses: [
            { PrivateIpAddress: '10.0.10.20', Primary: true },
            { PrivateIpAddress: '10.0.10.40', Primary: false },
          ],
        }),
      )
    ).NetworkInterface!;
    const subnet = (await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [frag.id] }))).Subnets![0]!;
    expect(subnet.AvailableIpAddressCount).toBe(64 - 5 - 2);
    const err = await errorOf(() =>
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: holder.NetworkInterfaceId!,
          Ipv4PrefixCount: 1,
        }),
      ),
    );
    expect(err).toMatchObject({
      name: 'InsufficientCidrBlocks',
      message: 'The specified subnet does not have enough free cidr blocks to satisfy the request.',
    });
  });

  it('refuses prefixes on Xen instances and reserved subnet addresses', async () => {
    const { primaryEniId } = await launch('c4.large');
    const xen = await errorOf(() =>
      ec2.send(new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: primaryEniId, Ipv4PrefixCount: 1 })),
    );
    expect(xen).toMatchObject({
      name: 'InvalidParameterValue',
      message: expect.stringContaining('c4.large'),
    });
    for (const reserved of ['10.0.1.0', '10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.255']) {
      const e = await errorOf(() =>
        ec2.send(
          new AssignPrivateIpAddressesCommand({
            NetworkInterfaceId: primaryEniId,
            PrivateIpAddresses: [reserved],
          }),
        ),
      );
      expect(e.message).toContain('reserved');
    }
  });

  it('reports subnet exhaustion and missing cidr blocks', async () => {
    const small = f.state.createSubnet({ vpcId: f.vpcId, cidr: '10.0.9.0/28', az: 'us-west-2a' }); // 11 usable, no free /28
    const eni = (
      await ec2.send(
        new CreateNetworkInterfaceCommand({ SubnetId: small.id, SecondaryPrivateIpAddressCount: 8 }),
      )
    ).NetworkInterface!;
    const noPrefix = await errorOf(() =>
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: eni.NetworkInterfaceId!,
          Ipv4PrefixCount: 1,
        }),
      ),
    );
    expect(noPrefix.name).toBe('InsufficientCidrBlocks');
    const noIps = await errorOf(() =>
      ec2.send(
        new AssignPrivateIpAddressesCommand({
          NetworkInterfaceId: eni.NetworkInterfaceId!,
          SecondaryPrivateIpAddressCount: 3,
        }),
      ),
    );
    expect(noIps).toMatchObject({
      name: 'InvalidParameterValue',
      message: "There aren't sufficient free Ipv4 addresses or prefixes",
    });
    const noEni = await errorOf(() =>
      ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: small.id, SecondaryPrivateIpAddressCount: 2 })),
    );
    expect(noEni.name).toBe('InsufficientFreeAddressesInSubnet');
  });
});

describe('tags', () => {
  it('CreateTags, DescribeTags with filters, DeleteTags', async () => {
    const eni = await createEni();
    const id = eni.NetworkInterfaceId!;
    await ec2.send(
      new CreateTagsCommand({
        Resources: [id, f.subnetId],
        Tags: [{ Key: 'node.k8s.amazonaws.com/instance_id', Value: 'i-1' }],
      }),
    );
    const t = await ec2.send(
      new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['node.k8s.amazonaws.com/*'] }] }),
    );
    expect(t.Tags!.map((x) => [x.ResourceId, x.ResourceType, x.Value]).sort()).toEqual(
      [
        [id, 'network-interface', 'i-1'],
        [f.subnetId, 'subnet', 'i-1'],
      ].sort(),
    );
    await ec2.send(
      new DeleteTagsCommand({
        Resources: [f.subnetId],
        Tags: [{ Key: 'node.k8s.amazonaws.com/instance_id' }],
      }),
    );
    const after = await ec2.send(
      new DescribeTagsCommand({ Filters: [{ Name: 'resource-id', Values: [f.subnetId] }] }),
    );
    expect(after.Tags!.map((x) => x.Key)).toEqual(['Name']);
    expect(
      (
        await errorOf(() =>
          ec2.send(
            new CreateTagsCommand({ Resources: ['eni-0123456789abcdef0'], Tags: [{ Key: 'a', Value: 'b' }] }),
          ),
        )
      ).name,
    ).toBe('InvalidNetworkInterfaceID.NotFound');
  });
});

describe('DescribeNetworkInterfaces', () => {
  it('filters by tag-key, tag:K, status, vpc-id, subnet-id, attachment.instance-id and id', async () => {
    const { instanceId, primaryEniId } = await launch();
    const tagged = await createEni({
      TagSpecifications: [
        {
          ResourceType: 'network-interface',
          Tags: [{ Key: 'cluster.k8s.amazonaws.com/name', Value: 'blue' }],
        },
      ],
    });
    const other = await createEni({
      TagSpecifications: [
        {
          ResourceType: 'network-interface',
          Tags: [{ Key: 'cluster.k8s.amazonaws.com/name', Value: 'green' }],
        },
      ],
    });
    const ids = async (filters: { Name: string; Values: string[] }[]) =>
      (
        (await ec2.send(new DescribeNetworkInterfacesCommand({ Filters: filters }))).NetworkInterfaces ?? []
      ).map((e) => e.NetworkInterfaceId);
    expect(await ids([{ Name: 'tag-key', Values: ['cluster.k8s.amazonaws.com/name'] }])).toEqual(
      expect.arrayContaining([tagged.NetworkInterfaceId, other.NetworkInterfaceId]),
    );
    expect(await ids([{ Name: 'tag:cluster.k8s.amazonaws.com/name', Values: ['blue'] }])).toEqual([
      tagged.NetworkInterfaceId,
    ]);
    expect(await ids([{ Name: 'attachment.instance-id', Values: [instanceId] }])).toEqual([primaryEniId]);
    const available = await ids([
      { Name: 'status', Values: ['available'] },
      { Name: 'vpc-id', Values: [f.vpcId] },
      { Name: 'subnet-id', Values: [f.subnetId] },
    ]);
    expect(available).toContain(tagged.NetworkInterfaceId);
    expect(available).not.toContain(primaryEniId);
    expect(await ids([{ Name: 'network-interface-id', Values: [other.NetworkInterfaceId!] }])).toEqual([
      other.NetworkInterfaceId,
    ]);
  });

  it('pages with MaxResults/NextToken without repeats, and validates the combination', async () => {
    for (let k = 0; k < 12; k++) await createEni();
    const all = (await ec2.send(new DescribeNetworkInterfacesCommand({}))).NetworkInterfaces!.map(
      (e) => e.NetworkInterfaceId,
    );
    const seen: string[] = [];
    let pages = 0;
    for await (const page of paginateDescribeNetworkInterfaces({ client: ec2, pageSize: 5 }, {})) {
      pages++;
      expect(page.NetworkInterfaces!.length).toBeLessThanOrEqual(5);
      seen.push(...page.NetworkInterfaces!.map((e) => e.NetworkInterfaceId!));
    }
    expect(pages).toBe(Math.ceil(all.length / 5));
    expect(seen).toEqual(all);
    expect(
      (await errorOf(() => ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 2 })))).name,
    ).toBe('InvalidParameterValue');
    expect(
      (
        await errorOf(() =>
          ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 5, NetworkInterfaceIds: [all[0]!] })),
        )
      ).name,
    ).toBe('InvalidParameterCombination');
    expect(
      (
        await errorOf(() =>
          ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 5, NextToken: 'garbage' })),
        )
      ).name,
    ).toBe('InvalidParameterValue');
  });
});

describe('protocol', () => {
  const post = (body: string) =>
    fetch(f.server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });

  it('answers unknown actions with InvalidAction in the EC2 error envelope', async () => {
    const r = await post('Action=LaunchRockets&Version=2016-11-15');
    expect(r.status).toBe(400);
    const text = await r.text();
    expect(text).toMatch(
      /<Response><Errors><Error><Code>InvalidAction<\/Code><Message>The action LaunchRockets is not valid/,
    );
    expect(text).toMatch(/<RequestID>[0-9a-f-]{36}<\/RequestID>/);
  });

  it('writes replies in the 2016-11-15 namespace with a requestId, and honours DryRun', async () => {
    const ok = await post(`Action=DescribeSubnets&Version=2016-11-15&SubnetId.1=${f.subnetId}`);
    const text = await ok.text();
    expect(text).toContain('<DescribeSubnetsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">');
    expect(text).toMatch(/<requestId>[0-9a-f-]{36}<\/requestId>/);
    expect(text).toMatch(/<subnetSet>\s*<item>\s*<subnetId>/);
    const dry = await post(
      `Action=CreateNetworkInterface&Version=2016-11-15&SubnetId=${f.subnetId}&DryRun=true`,
    );
    expect(dry.status).toBe(412);
    expect(await dry.text()).toContain('<Code>DryRunOperation</Code>');
  });

  it('accepts GET with a query string, and refuses oversized bodies', async () => {
    const r = await fetch(`${f.server.url}/?Action=DescribeVpcs&Version=2016-11-15`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain(`<vpcId>${f.vpcId}</vpcId>`);
    const big = await post(`Action=DescribeVpcs&Version=2016-11-15&Pad=${'x'.repeat(1_100_000)}`).catch(
      (e: Error) => e,
    );
    // the server answers 413 and drops the connection; either is a refusal
    if (big instanceof Response) expect(big.status).toBe(413);
    else expect(big).toBeInstanceOf(Error);
  });

  it('rejects malformed integers and booleans', async () => {
    const r = await post('Action=DescribeNetworkInterfaces&Version=2016-11-15&MaxResults=ten');
    expect(r.status).toBe(400);
    expect(await r.text()).toContain('Value (ten) for parameter MaxResults is invalid');
  });
});
