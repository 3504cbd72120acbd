/**
 * ipamd's Query-protocol client against the AWS SDK as the oracle: the same input must put the same
 * parameters on the wire, and the same reply must read back as the same values. Both talk to the EC2
 * emulator on loopback, so the replies are realistic (attached ENIs with secondary IPs, prefixes, tags).
 */

import type { NetworkInterface } from '@aws-sdk/client-ec2';
import {
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  CreateTagsCommand,
  DeleteNetworkInterfaceCommand,
  DescribeInstanceTypesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DetachNetworkInterfaceCommand,
  EC2Client,
  ModifyNetworkInterfaceAttributeCommand,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateParams } from '../../../../infra/local-vpc/ec2/api-model.js';
import { Ec2Api, NO_BACKOFF, toEni } from '../../../../ipamd/aws/ec2.js';
import {
  type Ec2Action,
  type Ec2Input,
  type Ec2Output,
  type Ec2Transport,
  fromReply,
  toQueryParams,
} from '../../../../ipamd/aws/ec2-wire.js';
import { Ec2QueryClient, regionalEndpoint } from '../../../../ipamd/aws/query-client.js';
import { limitsFromInstanceTypeInfo } from '../../../../lib/instance-types/from-ec2.js';
import { type Ec2Fixture, errorOf, startFixture } from '../../local-vpc/helpers.js';

const COMMANDS = {
  AssignPrivateIpAddresses: AssignPrivateIpAddressesCommand,
  AttachNetworkInterface: AttachNetworkInterfaceCommand,
  CreateNetworkInterface: CreateNetworkInterfaceCommand,
  CreateTags: CreateTagsCommand,
  DeleteNetworkInterface: DeleteNetworkInterfaceCommand,
  DescribeInstanceTypes: DescribeInstanceTypesCommand,
  DescribeNetworkInterfaces: DescribeNetworkInterfacesCommand,
  DescribeSubnets: DescribeSubnetsCommand,
  DetachNetworkInterface: DetachNetworkInterfaceCommand,
  ModifyNetworkInterfaceAttribute: ModifyNetworkInterfaceAttributeCommand,
  UnassignPrivateIpAddresses: UnassignPrivateIpAddressesCommand,
} as const;

/** The form parameters the SDK puts on the wire for a command (captured, never sent). */
async function sdkParams(action: Ec2Action, input: object): Promise<Record<string, string>> {
  let body = '';
  const client = new EC2Client({
    region: 'us-west-2',
    credentials: { accessKeyId: 'AKID', secretAccessKey: 's' },
    maxAttempts: 1,
    requestHandler: {
      handle: async (req: { body: string }) => {
        body = req.body;
        throw new Error('captured');
      },
    } as never,
  });
  const Command = COMMANDS[action] as unknown as new (i: object) => never;
  await client.send(new Command(input)).catch(() => undefined);
  return Object.fromEntries(new URLSearchParams(body));
}

function ourParams(action: Ec2Action, input: object): Record<string, string> {
  return { Action: action, Version: '2016-11-15', ...Object.fromEntries(toQueryParams(input)) };
}

/**
 * Every value our reader produced equals the SDK's at the same path (dates compared as instants), and
 * every list has the SDK's length. Members ipamd never reads stay strings where the SDK types them
 * (those are skipped here; the projections through ipamd's own readers below cover what it reads).
 */
function expectAgrees(ours: unknown, theirs: unknown, path = '$'): number {
  if (theirs instanceof Date) {
    expect(new Date(ours as string).getTime(), path).toBe(theirs.getTime());
    return 1;
  }
  if (Array.isArray(ours)) {
    expect(Array.isArray(theirs), `${path} is a list`).toBe(true);
    expect(ours.length, `${path} length`).toBe((theirs as unknown[]).length);
    return ours.reduce(
      (n: number, v, i) => n + expectAgrees(v, (theirs as unknown[])[i], `${path}[${i}]`),
      0,
    );
  }
  if (typeof ours === 'object' && ours !== null) {
    let n = 0;
    for (const [k, v] of Object.entries(ours)) {
      // Members the SDK models as something other than a list or structure it drops: skip those.
      if (theirs === undefined || !(k in (theirs as object))) continue;
      n += expectAgrees(v, (theirs as Record<string, unknown>)[k], `${path}.${k}`);
    }
    return n;
  }
  if (typeof ours === 'string' && typeof theirs !== 'string') return 0;
  expect(ours, path).toStrictEqual(theirs);
  return 1;
}

describe('query parameters', () => {
  const cases: { [A in Ec2Action]: Ec2Input<A> } = {
    AssignPrivateIpAddresses: { NetworkInterfaceId: 'eni-1', SecondaryPrivateIpAddressCount: 3 },
    AttachNetworkInterface: {
      NetworkInterfaceId: 'eni-1',
      InstanceId: 'i-1',
      DeviceIndex: 2,
      NetworkCardIndex: 0,
    },
    CreateNetworkInterface: {
      ClientToken: 'c1d2e3f4-0000-4000-8000-000000000001',
      SubnetId: 'subnet-1',
      Groups: ['sg-1', 'sg-2'],
      Description: 'aws-K8S-i-1 & co (pods)',
      Ipv4PrefixCount: 1,
      TagSpecifications: [
        {
          ResourceType: 'network-interface',
          Tags: [
            { Key: 'node.k8s.amazonaws.com/instance_id', Value: 'i-1' },
            { Key: 'team', Value: "a b+c/d=e*f'!" },
          ],
        },
      ],
    },
    CreateTags: { Resources: ['eni-1', 'eni-2'], Tags: [{ Key: 'k', Value: 'v' }] },
    DeleteNetworkInterface: { NetworkInterfaceId: 'eni-1' },
    DescribeInstanceTypes: { InstanceTypes: ['m5.large', 'c5.xlarge'] },
    DescribeNetworkInterfaces: {
      Filters: [
        { Name: 'attachment.instance-id', Values: ['i-1'] },
        { Name: 'tag-key', Values: ['a', 'b'] },
      ],
      NextToken: 'tok/en==',
      MaxResults: 1000,
    },
    DescribeSubnets: { Filters: [{ Name: 'vpc-id', Values: ['vpc-1'] }] },
    DetachNetworkInterface: { AttachmentId: 'eni-attach-1' },
    ModifyNetworkInterfaceAttribute: {
      NetworkInterfaceId: 'eni-1',
      Attachment: { AttachmentId: 'eni-attach-1', DeleteOnTermination: true },
    },
    UnassignPrivateIpAddresses: { NetworkInterfaceId: 'eni-1', PrivateIpAddresses: ['10.0.0.5', '10.0.0.6'] },
  };

  for (const [action, input] of Object.entries(cases) as [Ec2Action, object][]) {
    it(`${action}: the same parameters as the SDK`, async () => {
      expect(ourParams(action, input)).toEqual(await sdkParams(action, input));
    });
  }

  it('every parameter in these cases is one the EC2 service model defines', () => {
    for (const [action, input] of Object.entries(cases) as [Ec2Action, object][]) {
      expect(() => validateParams(action, toQueryParams(input)), action).not.toThrow();
    }
    // And the check has teeth: a misspelt member is refused as EC2 refuses it.
    expect(() =>
      validateParams(
        'AttachNetworkInterface',
        new Map([...toQueryParams(cases.AttachNetworkInterface), ['DeviceIdx', '1']]),
      ),
    ).toThrow(/UnknownParameter|DeviceIdx is not recognized/);
  });

  it('every request Ec2Api builds carries only parameters the service model defines', async () => {
    const sent: [Ec2Action, object][] = [];
    const eni: NetworkInterface = {
      NetworkInterfaceId: 'eni-0a1',
      MacAddress: '0a:00:00:00:00:01',
      SubnetId: 'subnet-01',
      PrivateIpAddress: '10.0.1.10',
      PrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.10', Primary: true }],
    };
    const replies: Partial<Record<Ec2Action, object>> = {
      CreateNetworkInterface: { NetworkInterface: eni },
      AttachNetworkInterface: { AttachmentId: 'eni-attach-1' },
      AssignPrivateIpAddresses: {
        AssignedPrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.11' }],
        AssignedIpv4Prefixes: [{ Ipv4Prefix: '10.0.1.32/28' }],
      },
    };
    const transport: Ec2Transport = {
      send: async (action, input) => {
        sent.push([action, input]);
        return (replies[action] ?? {}) as never;
      },
    };
    const api = new Ec2Api(transport, {
      maxAttempts: 1,
      mutatingRate: 1000,
      describeRate: 1000,
      log: pino({ level: 'silent' }),
      backoff: NO_BACKOFF,
    });
    for (const unit of ['ip', 'prefix'] as const) {
      await api.createNetworkInterface({
        subnetId: 'subnet-01',
        securityGroups: ['sg-1'],
        unit,
        count: 2,
        description: 'aws-K8S-i-01',
        tags: { 'node.k8s.amazonaws.com/instance_id': 'i-01' },
      });
      await api.assignAddresses('eni-0a1', 'subnet-01', unit, 1);
      await api.unassignAddresses('eni-0a1', unit, unit === 'ip' ? ['10.0.1.11'] : ['10.0.1.32/28']);
    }
    await api.attachNetworkInterface('eni-0a1', 'i-01', 1);
    await api.setDeleteOnTermination('eni-0a1', 'eni-attach-1');
    await api.detachNetworkInterface('eni-attach-1', 'eni-0a1');
    await api.deleteNetworkInterface('eni-0a1');
    await api.describeNetworkInterfaces(['eni-0a1']);
    await api.findNetworkInterfaces([{ Name: 'attachment.instance-id', Values: ['i-01'] }]);
    await api.createTags(['eni-0a1'], { k: 'v' });
    await api.describeSubnets([{ Name: 'vpc-id', Values: ['vpc-1'] }]);
    await api.describeInstanceType('m5.large');
    expect(new Set(sent.map(([a]) => a))).toEqual(new Set(Object.keys(COMMANDS)));
    for (const [action, input] of sent) {
      expect(
        () => validateParams(action, toQueryParams(input)),
        `${action} ${JSON.stringify(input)}`,
      ).not.toThrow();
    }
  });

  it('unassigns prefixes by their own parameter', async () => {
    const input = { NetworkInterfaceId: 'eni-1', Ipv4Prefixes: ['10.0.0.16/28'] };
    expect(ourParams('UnassignPrivateIpAddresses', input)).toEqual(
      await sdkParams('UnassignPrivateIpAddresses', input),
    );
  });
});

describe('replies, through the emulator', () => {
  let fx: Ec2Fixture;
  let sdk: EC2Client;
  let ours: Ec2QueryClient;
  let instanceId: string;

  beforeAll(async () => {
    fx = await startFixture();
    sdk = fx.client();
    ours = new Ec2QueryClient({
      region: 'us-west-2',
      endpoint: fx.server.url,
      credentials: async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' }),
    });
    instanceId = fx.state.runInstance({ instanceType: 'm5.large', subnetId: fx.subnetId }).id;
  });
  afterAll(async () => {
    ours.destroy();
    await fx.close();
  });

  async function both<A extends Ec2Action>(action: A, input: Ec2Input<A>) {
    const Command = COMMANDS[action] as unknown as new (i: object) => never;
    const theirs = (await sdk.send(new Command(input))) as Ec2Output<A>;
    return { ours: await ours.send(action, input), theirs };
  }

  it('reads a created, attached ENI with IPs, a prefix and tags as the SDK does', async () => {
    const created = await ours.send('CreateNetworkInterface', {
      SubnetId: fx.subnetId,
      SecondaryPrivateIpAddressCount: 2,
      TagSpecifications: [{ ResourceType: 'network-interface', Tags: [{ Key: 'k', Value: 'v & <w>' }] }],
    });
    const eniId = created.NetworkInterface!.NetworkInterfaceId!;
    expect(created.NetworkInterface!.PrivateIpAddresses).toHaveLength(3);
    // Mutating calls run once (ours); the describe below compares the outcome with the SDK's reading.
    const att = await ours.send('AttachNetworkInterface', {
      NetworkInterfaceId: eniId,
      InstanceId: instanceId,
      DeviceIndex: 1,
    });
    expect(att.AttachmentId).toMatch(/^eni-attach-/);
    const assigned = await ours.send('AssignPrivateIpAddresses', {
      NetworkInterfaceId: eniId,
      Ipv4PrefixCount: 1,
    });
    expect(assigned.AssignedIpv4Prefixes?.[0]?.Ipv4Prefix).toMatch(/\/28$/);

    const d = await both('DescribeNetworkInterfaces', { NetworkInterfaceIds: [eniId] });
    const checked = expectAgrees(d.ours, d.theirs);
    expect(checked).toBeGreaterThan(20);
    expect(toEni(d.ours.NetworkInterfaces![0]!)).toEqual(toEni(d.theirs.NetworkInterfaces![0]!));
    const eni = d.ours.NetworkInterfaces![0]!;
    expect(eni.Attachment?.DeviceIndex).toBe(1);
    expect(eni.PrivateIpAddresses?.filter((p) => p.Primary === false)).toHaveLength(2);
    expect(eni.Ipv4Prefixes).toHaveLength(1);
    expect(eni.TagSet).toEqual([{ Key: 'k', Value: 'v & <w>' }]);
    expect(eni.Groups?.length).toBeGreaterThan(0);
  });

  it('reads subnets and instance types as the SDK does', async () => {
    const s = await both('DescribeSubnets', { Filters: [{ Name: 'vpc-id', Values: [fx.vpcId] }] });
    expectAgrees(s.ours, s.theirs);
    expect(typeof s.ours.Subnets![0]!.AvailableIpAddressCount).toBe('number');
    const t = await both('DescribeInstanceTypes', { InstanceTypes: ['m5.large', 'p4d.24xlarge'] });
    expectAgrees(t.ours, t.theirs);
    const p4d = t.ours.InstanceTypes!.find((x) => x.InstanceType === 'p4d.24xlarge')!;
    expect(p4d.NetworkInfo?.NetworkCards?.length).toBeGreaterThan(1);
    expect(t.ours.InstanceTypes!.map(limitsFromInstanceTypeInfo)).toEqual(
      t.theirs.InstanceTypes!.map(limitsFromInstanceTypeInfo),
    );
  });

  it('a create retried with its ClientToken returns the first ENI instead of making a second', async () => {
    const input = { SubnetId: fx.subnetId, ClientToken: 'retry-token-1' };
    const first = await ours.send('CreateNetworkInterface', input);
    const again = await ours.send('CreateNetworkInterface', input);
    expect(again.NetworkInterface!.NetworkInterfaceId).toBe(first.NetworkInterface!.NetworkInterfaceId);
    const other = await ours.send('CreateNetworkInterface', { ...input, ClientToken: 'retry-token-2' });
    expect(other.NetworkInterface!.NetworkInterfaceId).not.toBe(first.NetworkInterface!.NetworkInterfaceId);
  });

  it('reads empty lists as empty', async () => {
    const d = await both('DescribeNetworkInterfaces', {
      Filters: [{ Name: 'subnet-id', Values: ['subnet-none'] }],
    });
    expect(d.ours.NetworkInterfaces).toEqual([]);
    expectAgrees(d.ours, d.theirs);
  });

  it('raises EC2 errors with the code, message and HTTP status the SDK reports', async () => {
    const input = { NetworkInterfaceId: 'eni-0000000000000dead' };
    const theirs = await errorOf(() => sdk.send(new DeleteNetworkInterfaceCommand(input)));
    const mine = await errorOf(() => ours.send('DeleteNetworkInterface', input));
    expect(mine.name).toBe(theirs.name);
    expect(mine.name).toBe('InvalidNetworkInterfaceID.NotFound');
    expect(mine.message).toBe(theirs.message);
    expect(mine.$metadata?.httpStatusCode).toBe(theirs.$metadata?.httpStatusCode);
  });

  it('names a refused connection by its errno, so the wrapper retries it as a network failure', async () => {
    const dead = new Ec2QueryClient({
      region: 'us-west-2',
      endpoint: 'http://127.0.0.1:9',
      credentials: async () => ({ accessKeyId: 'a', secretAccessKey: 'b' }),
    });
    const e = await errorOf(() => dead.send('DescribeSubnets', {}));
    expect(e.name).toBe('ECONNREFUSED');
    dead.destroy();
  });
});

describe('reply reader', () => {
  it('rejects a reply for another action and malformed numbers or booleans', () => {
    expect(() => fromReply('DescribeSubnets', { DescribeVpcsResponse: {} })).toThrow(
      /answered DescribeSubnets with <DescribeVpcsResponse>/,
    );
    expect(() =>
      fromReply('DescribeSubnets', {
        DescribeSubnetsResponse: { subnetSet: { item: { subnetId: 's', availableIpAddressCount: 'many' } } },
      }),
    ).toThrow(/availableIpAddressCount> is not a number/);
    expect(() =>
      fromReply('DescribeNetworkInterfaces', {
        DescribeNetworkInterfacesResponse: {
          networkInterfaceSet: { item: { privateIpAddressesSet: { item: { primary: 'yes' } } } },
        },
      }),
    ).toThrow(/primary> is not a boolean/);
    expect(() => fromReply('DescribeSubnets', { DescribeSubnetsResponse: { subnetSet: 'oops' } })).toThrow(
      /not a list of <item>/,
    );
  });

  it('builds the regional endpoint: the China partition’s domain, FIPS', () => {
    expect(regionalEndpoint('us-west-2')).toBe('https://ec2.us-west-2.amazonaws.com');
    expect(regionalEndpoint('cn-north-1')).toBe('https://ec2.cn-north-1.amazonaws.com.cn');
    expect(regionalEndpoint('us-gov-west-1', { fips: true })).toBe(
      'https://ec2-fips.us-gov-west-1.amazonaws.com',
    );
  });
});
