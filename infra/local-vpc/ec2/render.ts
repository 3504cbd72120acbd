/**
 * Model records -> EC2 reply shapes (lowerCamel element names as in the EC2 API reference and the
 * AWS SDK's deserializer, `...Set` lists of `<item>`).
 *
 * Exports: renderEni, renderInstance, renderMetadataOptions, renderSubnet, renderVpc,
 * renderInstanceType, renderTags, instanceStateOf.
 */
import type { InstanceTypeLimits } from '../../../lib/instance-types/index.js';
import type { Ec2State, Eni, Instance, Subnet, Vpc } from './state.js';
import type { XmlValue } from './xml.js';

export function renderTags(tags: ReadonlyMap<string, string>): XmlValue {
  return tags.size ? [...tags].map(([key, value]) => ({ key, value })) : undefined;
}

function groupSet(state: Ec2State, vpcId: string, ids: readonly string[]): XmlValue {
  const defaultId = state.getVpc(vpcId)?.defaultSecurityGroupId;
  return ids.map((groupId) => ({ groupId, groupName: groupId === defaultId ? 'default' : undefined }));
}

export function renderEni(state: Ec2State, eni: Readonly<Eni>): XmlValue {
  const a = eni.attachment;
  const primary = eni.privateIps.find((p) => p.primary);
  return {
    networkInterfaceId: eni.id,
    subnetId: eni.subnetId,
    vpcId: eni.vpcId,
    availabilityZone: eni.availabilityZone,
    availabilityZoneId: state.getSubnet(eni.subnetId)?.availabilityZoneId,
    description: eni.description,
    ownerId: eni.ownerId,
    requesterManaged: false,
    status: eni.status,
    macAddress: eni.mac,
    privateIpAddress: primary?.address,
    privateDnsName: primary ? dnsName(state, primary.address) : undefined,
    sourceDestCheck: eni.sourceDestCheck,
    groupSet: groupSet(state, eni.vpcId, eni.groups),
    attachment: a && {
      attachmentId: a.attachmentId,
      instanceId: a.instanceId,
      instanceOwnerId: eni.ownerId,
      deviceIndex: a.deviceIndex,
      networkCardIndex: a.networkCardIndex,
      status: a.status,
      attachTime: a.attachTime,
      deleteOnTermination: a.deleteOnTermination,
    },
    tagSet: renderTags(eni.tags),
    privateIpAddressesSet: eni.privateIps.map((p) => ({
      privateIpAddress: p.address,
      privateDnsName: dnsName(state, p.address),
      primary: p.primary,
    })),
    ipv4PrefixSet: eni.prefixes.length ? eni.prefixes.map((ipv4Prefix) => ({ ipv4Prefix })) : undefined,
    ipv6AddressesSet: [],
    interfaceType: 'interface',
  };
}

export function dnsName(state: Ec2State, ip: string): string {
  return `ip-${ip.replaceAll('.', '-')}.${state.region}.compute.internal`;
}

export const INSTANCE_STATE_CODES = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 } as const;

export function instanceStateOf(i: Readonly<Instance>): XmlValue {
  return { code: INSTANCE_STATE_CODES[i.state], name: i.state };
}

/** An instance's IMDS options as DescribeInstances and ModifyInstanceMetadataOptions show them. */
export function renderMetadataOptions(
  o: Readonly<Instance['metadataOptions']>,
  applied: 'applied' | 'pending' = 'applied',
): XmlValue {
  return { state: applied, httpPutResponseHopLimit: o.httpPutResponseHopLimit, httpEndpoint: 'enabled' };
}

export function renderInstance(state: Ec2State, i: Readonly<Instance>): XmlValue {
  const running = i.state === 'running';
  const enis = state.enisOfInstance(i.id);
  return {
    instanceId: i.id,
    imageId: i.imageId,
    instanceState: instanceStateOf(i),
    privateDnsName: running ? dnsName(state, i.privateIpAddress) : '',
    dnsName: '',
    reason: running ? '' : 'User initiated',
    amiLaunchIndex: 0,
    instanceType: i.instanceType,
    launchTime: i.launchTime,
    placement: { availabilityZone: i.availabilityZone, tenancy: 'default' },
    monitoring: { state: 'disabled' },
    subnetId: running ? i.subnetId : undefined,
    vpcId: running ? i.vpcId : undefined,
    privateIpAddress: running ? i.privateIpAddress : undefined,
    sourceDestCheck: true,
    groupSet: groupSet(state, i.vpcId, i.securityGroupIds),
    architecture: 'x86_64',
    rootDeviceType: 'ebs',
    rootDeviceName: '/dev/xvda',
    virtualizationType: 'hvm',
    hypervisor: i.limits.hypervisor === 'xen' ? 'xen' : 'nitro',
    tagSet: renderTags(i.tags),
    metadataOptions: renderMetadataOptions(i.metadataOptions),
    networkInterfaceSet: enis.map((e) => {
      const a = e.attachment!;
      return {
        networkInterfaceId: e.id,
        subnetId: e.subnetId,
        vpcId: e.vpcId,
        description: e.description,
        ownerId: e.ownerId,
        status: e.status,
        macAddress: e.mac,
        privateIpAddress: e.privateIps.find((p) => p.primary)?.address,
        sourceDestCheck: e.sourceDestCheck,
        groupSet: groupSet(state, e.vpcId, e.groups),
        attachment: {
          attachmentId: a.attachmentId,
          deviceIndex: a.deviceIndex,
          networkCardIndex: a.networkCardIndex,
          status: a.status,
          attachTime: a.attachTime,
          deleteOnTermination: a.deleteOnTermination,
        },
        privateIpAddressesSet: e.privateIps.map((p) => ({
          privateIpAddress: p.address,
          privateDnsName: dnsName(state, p.address),
          primary: p.primary,
        })),
        ipv4PrefixSet: e.prefixes.length ? e.prefixes.map((ipv4Prefix) => ({ ipv4Prefix })) : undefined,
        interfaceType: 'interface',
      };
    }),
  };
}

export function renderSubnet(state: Ec2State, s: Readonly<Subnet>): XmlValue {
  return {
    subnetId: s.id,
    subnetArn: `arn:aws:ec2:${state.region}:${state.accountId}:subnet/${s.id}`,
    state: 'available',
    vpcId: s.vpcId,
    ownerId: state.accountId,
    cidrBlock: s.cidrBlock,
    availableIpAddressCount: s.pool.available,
    availabilityZone: s.availabilityZone,
    availabilityZoneId: s.availabilityZoneId,
    defaultForAz: false,
    mapPublicIpOnLaunch: false,
    assignIpv6AddressOnCreation: false,
    ipv6CidrBlockAssociationSet: [],
    tagSet: renderTags(s.tags),
  };
}

export function renderVpc(state: Ec2State, v: Readonly<Vpc>): XmlValue {
  return {
    vpcId: v.id,
    ownerId: state.accountId,
    state: 'available',
    cidrBlock: v.cidrBlocks[0],
    cidrBlockAssociationSet: v.cidrBlocks.map((cidrBlock, i) => ({
      associationId: `vpc-cidr-assoc-${v.id.slice(4)}${i}`,
      cidrBlock,
      cidrBlockState: { state: 'associated' },
    })),
    dhcpOptionsId: 'default',
    instanceTenancy: 'default',
    isDefault: false,
    tagSet: renderTags(v.tags),
  };
}

export function renderInstanceType(t: InstanceTypeLimits): XmlValue {
  const totalEnis = t.networkCards.reduce((n, c) => n + c.maxEnis, 0);
  return {
    instanceType: t.name,
    currentGeneration: true,
    bareMetal: t.bareMetal,
    hypervisor: t.hypervisor === 'unknown' ? undefined : t.hypervisor,
    supportedUsageClasses: ['on-demand', 'spot'],
    supportedRootDeviceTypes: ['ebs'],
    supportedVirtualizationTypes: ['hvm'],
    vCpuInfo: t.vcpus === null ? undefined : { defaultVCpus: t.vcpus },
    networkInfo: {
      networkPerformance: 'Up to 10 Gigabit',
      maximumNetworkInterfaces: totalEnis,
      maximumNetworkCards: t.networkCards.length,
      defaultNetworkCardIndex: t.defaultNetworkCardIndex,
      networkCards: t.networkCards.map((c) => ({
        networkCardIndex: c.index,
        maximumNetworkInterfaces: c.maxEnis,
        networkPerformance: 'Up to 10 Gigabit',
      })),
      ipv4AddressesPerInterface: t.ipv4PerEni,
      ipv6AddressesPerInterface: t.ipv4PerEni,
      ipv6Supported: true,
      enaSupport: t.hypervisor === 'xen' ? 'unsupported' : 'required',
    },
  };
}
