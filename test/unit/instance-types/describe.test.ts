import { DescribeInstanceTypesCommand, EC2Client, type InstanceTypeInfo } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  InstanceTypeDataError,
  limitsFromInstanceTypeInfo,
  resolveInstanceType,
} from '../../../lib/instance-types/describe.js';

const ec2Mock = mockClient(EC2Client);
afterEach(() => ec2Mock.reset());

/** A reply shaped as EC2 gives it for a two-card type. */
function twoCardInfo(name: string): InstanceTypeInfo {
  return {
    InstanceType: name as never,
    Hypervisor: 'nitro',
    BareMetal: false,
    VCpuInfo: { DefaultVCpus: 128 },
    NetworkInfo: {
      MaximumNetworkInterfaces: 14,
      MaximumNetworkCards: 2,
      DefaultNetworkCardIndex: 0,
      Ipv4AddressesPerInterface: 50,
      NetworkCards: [
        { NetworkCardIndex: 1, MaximumNetworkInterfaces: 7 },
        { NetworkCardIndex: 0, MaximumNetworkInterfaces: 7 },
      ],
    },
  };
}

describe('limitsFromInstanceTypeInfo', () => {
  it('counts ENIs on the default card only and sorts the cards', () => {
    expect(limitsFromInstanceTypeInfo(twoCardInfo('x9.32xlarge'))).toEqual({
      name: 'x9.32xlarge',
      enis: 7,
      ipv4PerEni: 50,
      networkCards: [
        { index: 0, maxEnis: 7 },
        { index: 1, maxEnis: 7 },
      ],
      defaultNetworkCardIndex: 0,
      hypervisor: 'nitro',
      bareMetal: false,
      vcpus: 128,
    });
  });

  it('reads bare metal without a hypervisor as unknown, and old replies without cards', () => {
    const t = limitsFromInstanceTypeInfo({
      InstanceType: 'm5.metal',
      BareMetal: true,
      NetworkInfo: { MaximumNetworkInterfaces: 15, Ipv4AddressesPerInterface: 50 },
    });
    expect(t).toMatchObject({
      hypervisor: 'unknown',
      bareMetal: true,
      enis: 15,
      networkCards: [{ index: 0, maxEnis: 15 }],
      defaultNetworkCardIndex: 0,
      vcpus: null,
    });
  });

  it('fails clearly on a reply without NetworkInfo or with bad numbers', () => {
    expect(() => limitsFromInstanceTypeInfo({ InstanceType: 'm5.large' })).toThrow(
      /m5\.large without NetworkInfo/,
    );
    expect(() => limitsFromInstanceTypeInfo({ NetworkInfo: {} })).toThrow(/without InstanceType/);
    expect(() =>
      limitsFromInstanceTypeInfo({ InstanceType: 'm5.large', NetworkInfo: { MaximumNetworkInterfaces: 3 } }),
    ).toThrow(/Ipv4AddressesPerInterface = undefined; expected an integer >= 1/);
    const noDefault = twoCardInfo('x9.large');
    noDefault.NetworkInfo!.DefaultNetworkCardIndex = 5;
    expect(() => limitsFromInstanceTypeInfo(noDefault)).toThrow(/no network card with the default index 5/);
    expect(() =>
      limitsFromInstanceTypeInfo({ ...twoCardInfo('x9.large'), Hypervisor: 'kvm' as never }),
    ).toThrow(InstanceTypeDataError);
  });
});

describe('resolveInstanceType', () => {
  it('answers known types from the table without calling EC2', async () => {
    const ec2 = new EC2Client({ region: 'us-east-1' });
    const t = await resolveInstanceType('m5.large', ec2);
    expect(t.enis).toBe(3);
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it('asks DescribeInstanceTypes once for an unknown type, then remembers it', async () => {
    ec2Mock
      .on(DescribeInstanceTypesCommand, { InstanceTypes: ['zz9.48xlarge' as never] })
      .resolves({ InstanceTypes: [twoCardInfo('zz9.48xlarge')] });
    const ec2 = new EC2Client({ region: 'us-east-1' });
    const first = await resolveInstanceType('zz9.48xlarge', ec2);
    const second = await resolveInstanceType('zz9.48xlarge', ec2);
    expect(first).toMatchObject({ name: 'zz9.48xlarge', enis: 7, ipv4PerEni: 50 });
    expect(second).toBe(first);
    expect(ec2Mock.commandCalls(DescribeInstanceTypesCommand)).toHaveLength(1);
  });

  it('reports a type EC2 does not know', async () => {
    const err = Object.assign(new Error('The following supplied instance types do not exist: [zz1.tiny]'), {
      name: 'InvalidInstanceType',
    });
    ec2Mock.on(DescribeInstanceTypesCommand).rejects(err);
    await expect(resolveInstanceType('zz1.tiny', new EC2Client({ region: 'us-east-1' }))).rejects.toThrow(
      /EC2 does not know instance type "zz1.tiny"/,
    );
  });

  it('names the permission when the call is denied, and rejects an empty or bad reply', async () => {
    const denied = Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' });
    ec2Mock.on(DescribeInstanceTypesCommand).rejectsOnce(denied).resolvesOnce({ InstanceTypes: [] });
    const ec2 = new EC2Client({ region: 'us-east-1' });
    await expect(resolveInstanceType('zz2.large', ec2)).rejects.toThrow(/ec2:DescribeInstanceTypes/);
    await expect(resolveInstanceType('zz2.large', ec2)).rejects.toThrow(
      /returned no entry for instance type zz2/,
    );
    ec2Mock
      .on(DescribeInstanceTypesCommand)
      .resolves({ InstanceTypes: [{ InstanceType: 'zz3.large' as never }] });
    await expect(resolveInstanceType('zz3.large', ec2)).rejects.toThrow(/without NetworkInfo/);
  });
});
