import {
  DescribeInstanceTypesCommand,
  DescribeRegionsCommand,
  EC2Client,
  type InstanceTypeInfo,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  mergeRegionSweeps,
  type RegionSweep,
  sweepAllRegions,
  toInstanceTypesJson,
} from '../../../lib/instance-types/sweep.js';
import type { InstanceTypeLimits } from '../../../lib/instance-types/types.js';
import { validateInstanceTypes } from '../../../scripts/gen-instance-types.mjs';

const ec2Mock = mockClient(EC2Client);
afterEach(() => ec2Mock.reset());

function info(
  name: string,
  enis: number,
  ipv4: number,
  over: Partial<InstanceTypeInfo> = {},
): InstanceTypeInfo {
  return {
    InstanceType: name as never,
    Hypervisor: 'nitro',
    BareMetal: false,
    VCpuInfo: { DefaultVCpus: 2 },
    NetworkInfo: {
      MaximumNetworkInterfaces: enis,
      DefaultNetworkCardIndex: 0,
      Ipv4AddressesPerInterface: ipv4,
      NetworkCards: [{ NetworkCardIndex: 0, MaximumNetworkInterfaces: enis }],
    },
    ...over,
  };
}

/** A fake EC2 per region: what each region offers, served two types a page. */
function fakeEc2(offers: Record<string, InstanceTypeInfo[]>, failing: Record<string, Error> = {}) {
  ec2Mock
    .on(DescribeRegionsCommand)
    .resolves({ Regions: Object.keys(offers).map((RegionName) => ({ RegionName })) });
  ec2Mock.on(DescribeInstanceTypesCommand).callsFake(async (input, getClient) => {
    const region = await getClient().config.region();
    if (failing[region]) throw failing[region];
    const all = offers[region] ?? [];
    const start = input.NextToken ? Number(input.NextToken) : 0;
    const next = start + 2 < all.length ? String(start + 2) : undefined;
    return { InstanceTypes: all.slice(start, start + 2), NextToken: next };
  });
}

const clientFor = (region: string) =>
  new EC2Client({ region, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });

describe('sweepAllRegions', () => {
  it('follows NextToken through every page of every region and merges', async () => {
    fakeEc2({
      'us-east-1': [
        info('m5.large', 3, 10),
        info('m5.xlarge', 4, 15),
        info('c5.large', 3, 10),
        info('t3.nano', 2, 2),
      ],
      'eu-west-1': [info('m5.large', 3, 10), info('zz1.large', 2, 4)],
    });
    const done: string[] = [];
    const merged = await sweepAllRegions({
      homeRegion: 'us-east-1',
      clientFor,
      onRegionDone: (s) => done.push(s.region),
    });
    expect([...merged.keys()]).toEqual(['c5.large', 'm5.large', 'm5.xlarge', 't3.nano', 'zz1.large']);
    expect(merged.get('t3.nano')).toMatchObject({ enis: 2, ipv4PerEni: 2, hypervisor: 'nitro' });
    expect(done.sort()).toEqual(['eu-west-1', 'us-east-1']);
    // 2 pages in us-east-1, 1 in eu-west-1.
    expect(ec2Mock.commandCalls(DescribeInstanceTypesCommand)).toHaveLength(3);
  });

  it('fails loudly when regions disagree, naming type, field and regions', async () => {
    fakeEc2({
      'us-east-1': [info('m5.large', 3, 10)],
      'eu-west-1': [info('m5.large', 3, 10)],
      'ap-south-1': [info('m5.large', 4, 10, { VCpuInfo: { DefaultVCpus: 4 } })],
    });
    await expect(sweepAllRegions({ homeRegion: 'us-east-1', clientFor })).rejects.toThrow(
      /regions disagree on 3 instance-type limits[\s\S]*m5\.large enis: 4 in ap-south-1; 3 in eu-west-1, us-east-1[\s\S]*m5\.large networkCards: 0:4 in ap-south-1; 0:3 in eu-west-1, us-east-1[\s\S]*m5\.large vcpus: 4 in ap-south-1; 2 in eu-west-1, us-east-1/,
    );
  });

  it('fails when a region cannot be swept rather than writing a partial table', async () => {
    fakeEc2(
      { 'us-east-1': [info('m5.large', 3, 10)], 'me-south-1': [] },
      {
        'me-south-1': Object.assign(new Error('AWS was not able to validate the credentials'), {
          name: 'AuthFailure',
        }),
      },
    );
    await expect(sweepAllRegions({ homeRegion: 'us-east-1', clientFor })).rejects.toThrow(
      /incomplete; 1 regions failed:\n {2}DescribeInstanceTypes in me-south-1 failed: AuthFailure/,
    );
  });
});

describe('mergeRegionSweeps', () => {
  const limits = (over: Partial<InstanceTypeLimits> = {}): InstanceTypeLimits => ({
    name: 'm5.large',
    enis: 3,
    ipv4PerEni: 10,
    networkCards: [{ index: 0, maxEnis: 3 }],
    defaultNetworkCardIndex: 0,
    hypervisor: 'nitro',
    bareMetal: false,
    vcpus: 2,
    ...over,
  });
  const sweep = (region: string, ...types: InstanceTypeLimits[]): RegionSweep => ({ region, types });

  it('takes the vCPU figure from the regions that give one', () => {
    const merged = mergeRegionSweeps([
      sweep('a-1', limits({ vcpus: null })),
      sweep('b-1', limits({ vcpus: 2 })),
    ]);
    expect(merged.get('m5.large')!.vcpus).toBe(2);
  });

  it('reports hypervisor and bare-metal disagreements', () => {
    expect(() =>
      mergeRegionSweeps([
        sweep('a-1', limits()),
        sweep('b-1', limits({ hypervisor: 'xen', bareMetal: true })),
      ]),
    ).toThrow(
      /m5\.large hypervisor: nitro in a-1; xen in b-1[\s\S]*m5\.large bareMetal: false in a-1; true in b-1/,
    );
  });
});

describe('toInstanceTypesJson', () => {
  it('writes the seed shape, keeping an earlier vCPU figure EC2 no longer gives', () => {
    const merged = new Map<string, InstanceTypeLimits>([
      [
        'mac2.metal',
        {
          name: 'mac2.metal',
          enis: 8,
          ipv4PerEni: 30,
          networkCards: [{ index: 0, maxEnis: 8 }],
          defaultNetworkCardIndex: 0,
          hypervisor: 'unknown',
          bareMetal: true,
          vcpus: null,
        },
      ],
      [
        'm5.large',
        {
          name: 'm5.large',
          enis: 3,
          ipv4PerEni: 10,
          networkCards: [{ index: 0, maxEnis: 3 }],
          defaultNetworkCardIndex: 0,
          hypervisor: 'nitro',
          bareMetal: false,
          vcpus: 2,
        },
      ],
    ]);
    const json = toInstanceTypesJson(merged, { 'mac2.metal': { vcpus: 12, vcpusSource: 'published-spec' } });
    expect(Object.keys(json)).toEqual(['m5.large', 'mac2.metal']);
    expect(json['mac2.metal']).toMatchObject({ vcpus: 12, vcpusSource: 'published-spec' });
    expect(json['m5.large']).toEqual({
      bareMetal: false,
      defaultNetworkCardIndex: 0,
      enis: 3,
      hypervisor: 'nitro',
      ipv4PerEni: 10,
      networkCards: [{ maximumNetworkInterfaces: 3, networkCardIndex: 0 }],
      vcpus: 2,
      vcpusSource: 'describe-instance-types',
    });
    // What the sweep writes is what the generator accepts.
    expect(() => validateInstanceTypes(json)).not.toThrow();
    expect(toInstanceTypesJson(merged)['mac2.metal']).toMatchObject({ vcpus: null, vcpusSource: 'unknown' });
  });
});
