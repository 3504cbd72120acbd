/**
 * DescribeInstanceTypes entries -> the calculator's limits, validated. Type-only SDK imports: ipamd uses this
 * with its own EC2 client and must not pull @aws-sdk/client-ec2 into its bundle.
 */
import type { InstanceTypeInfo } from '@aws-sdk/client-ec2';
import type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

export class InstanceTypeDataError extends Error {
  override name = 'InstanceTypeDataError';
}

function count(value: unknown, min: number, what: string, type: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InstanceTypeDataError(
      `DescribeInstanceTypes gave ${type} ${what} = ${JSON.stringify(value)}; expected an integer >= ${min}`,
    );
  }
  return value;
}

/** Converts one DescribeInstanceTypes entry, validating every field the limits depend on. */
export function limitsFromInstanceTypeInfo(info: InstanceTypeInfo): InstanceTypeLimits {
  const name: string | undefined = info.InstanceType;
  if (typeof name !== 'string' || name === '') {
    throw new InstanceTypeDataError('DescribeInstanceTypes gave an entry without InstanceType');
  }
  const net = info.NetworkInfo;
  if (!net) {
    throw new InstanceTypeDataError(
      `DescribeInstanceTypes gave ${name} without NetworkInfo; its ENI and IP limits are unknown`,
    );
  }
  const ipv4PerEni = count(net.Ipv4AddressesPerInterface, 1, 'NetworkInfo.Ipv4AddressesPerInterface', name);
  const defaultNetworkCardIndex =
    net.DefaultNetworkCardIndex === undefined
      ? 0
      : count(net.DefaultNetworkCardIndex, 0, 'NetworkInfo.DefaultNetworkCardIndex', name);

  let networkCards: NetworkCard[];
  if (net.NetworkCards && net.NetworkCards.length > 0) {
    networkCards = net.NetworkCards.map((c, i) => ({
      index: count(c.NetworkCardIndex, 0, `NetworkInfo.NetworkCards[${i}].NetworkCardIndex`, name),
      maxEnis: count(
        c.MaximumNetworkInterfaces,
        0,
        `NetworkInfo.NetworkCards[${i}].MaximumNetworkInterfaces`,
        name,
      ),
    })).sort((a, b) => a.index - b.index);
  } else {
    // Older replies list no cards: the instance-wide maximum is then the single card's.
    const max = count(net.MaximumNetworkInterfaces, 1, 'NetworkInfo.MaximumNetworkInterfaces', name);
    networkCards = [{ index: 0, maxEnis: max }];
  }
  const defaultCard = networkCards.find((c) => c.index === defaultNetworkCardIndex);
  if (!defaultCard) {
    throw new InstanceTypeDataError(
      `DescribeInstanceTypes gave ${name} no network card with the default index ${defaultNetworkCardIndex}`,
    );
  }
  const enis = count(defaultCard.maxEnis, 1, 'MaximumNetworkInterfaces of the default network card', name);

  const hv = info.Hypervisor;
  if (hv !== undefined && hv !== 'nitro' && hv !== 'xen') {
    throw new InstanceTypeDataError(
      `DescribeInstanceTypes gave ${name} an unknown Hypervisor ${JSON.stringify(hv)}`,
    );
  }
  const hypervisor: Hypervisor = hv ?? 'unknown';
  const vcpus =
    info.VCpuInfo?.DefaultVCpus === undefined
      ? null
      : count(info.VCpuInfo.DefaultVCpus, 1, 'VCpuInfo.DefaultVCpus', name);

  return {
    name,
    enis,
    ipv4PerEni,
    networkCards,
    defaultNetworkCardIndex,
    hypervisor,
    bareMetal: info.BareMetal === true,
    vcpus,
  };
}
