/**
 * The instance metadata an instance sees, as a tree built from the EC2 model at one moment:
 * directories are objects, leaves are strings. The IMDS server publishes these snapshots late (its
 * lag) and answers paths from them.
 *
 * Exports: MetadataTree, buildMetadata(state, instanceId), lookupMetadata(tree, path).
 */
import type { Ec2State } from '../ec2/state.js';

export type MetadataNode = string | { [name: string]: MetadataNode };
export type MetadataTree = { [name: string]: MetadataNode };

/** The instance profile role every emulated instance carries. */
export const INSTANCE_ROLE = 'vpccni-local-node';

/** Snapshot of everything under /latest/ for one instance; undefined when it is not running. */
export function buildMetadata(state: Ec2State, instanceId: string): MetadataTree | undefined {
  const instance = state.getInstance(instanceId);
  if (instance?.state !== 'running') return undefined;
  const enis = state.visibleEnisOfInstance(instanceId);
  const primaryEni = enis.find((e) => e.id === instance.primaryEniId);
  const multiCard = instance.limits.networkCards.length > 1;
  const hostname = (ip: string) => `ip-${ip.replaceAll('.', '-')}.${state.region}.compute.internal`;

  const macs: Record<string, MetadataNode> = {};
  for (const eni of enis) {
    const subnet = state.getSubnet(eni.subnetId)!;
    const vpc = state.getVpc(eni.vpcId)!;
    const primaryIp = eni.privateIps.find((p) => p.primary)!.address;
    const node: Record<string, MetadataNode> = {
      'device-number': String(eni.attachment!.deviceIndex),
      'interface-id': eni.id,
      'local-hostname': hostname(primaryIp),
      'local-ipv4s': eni.privateIps.map((p) => p.address).join('\n'),
      mac: eni.mac,
      'owner-id': eni.ownerId,
      'security-group-ids': eni.groups.join('\n'),
      'subnet-id': subnet.id,
      'subnet-ipv4-cidr-block': subnet.cidrBlock,
      'vpc-id': vpc.id,
      'vpc-ipv4-cidr-block': vpc.cidrBlocks[0]!,
      'vpc-ipv4-cidr-blocks': vpc.cidrBlocks.join('\n'),
    };
    // Only multi-card types expose network-card; EC2 answers 404 on the others.
    if (multiCard) node['network-card'] = String(eni.attachment!.networkCardIndex);
    if (eni.prefixes.length > 0) node['ipv4-prefix'] = eni.prefixes.join('\n');
    macs[eni.mac] = node;
  }

  const identity = {
    accountId: state.accountId,
    architecture: 'x86_64',
    availabilityZone: instance.availabilityZone,
    imageId: instance.imageId,
    instanceId: instance.id,
    instanceType: instance.instanceType,
    pendingTime: instance.launchTime.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    privateIp: instance.privateIpAddress,
    region: state.region,
    version: '2017-09-30',
  };

  // The instance profile's role credentials, as the SDK's IMDS provider reads them. The access key id
  // is the emulator's caller identity, the same one the fixtures give a node through the environment.
  const issued = new Date();
  const roleCredentials = JSON.stringify({
    Code: 'Success',
    LastUpdated: issued.toISOString(),
    Type: 'AWS-HMAC',
    AccessKeyId: `AKID${instance.id}`,
    SecretAccessKey: 'local',
    Token: `local-session-${instance.id}`,
    Expiration: new Date(issued.getTime() + 6 * 3600_000).toISOString(),
  });

  return {
    'meta-data': {
      'ami-id': instance.imageId,
      'ami-launch-index': '0',
      hostname: hostname(instance.privateIpAddress),
      'instance-id': instance.id,
      'instance-type': instance.instanceType,
      'local-hostname': hostname(instance.privateIpAddress),
      'local-ipv4': instance.privateIpAddress,
      mac: primaryEni?.mac ?? '',
      placement: {
        'availability-zone': instance.availabilityZone,
        'availability-zone-id': state.getSubnet(instance.subnetId)?.availabilityZoneId ?? '',
        region: state.region,
      },
      network: { interfaces: { macs } },
      iam: { 'security-credentials': { [INSTANCE_ROLE]: roleCredentials } },
    },
    dynamic: {
      'instance-identity': { document: JSON.stringify(identity, null, 2) },
    },
  };
}

export type LookupResult =
  | { kind: 'leaf'; body: string }
  | { kind: 'dir'; body: string }
  | { kind: 'missing' };

/** Answers one path below /latest/ ('' is the root): a leaf's value, a directory listing, or missing. */
export function lookupMetadata(tree: MetadataTree, path: string): LookupResult {
  const parts = path.split('/').filter((p) => p !== '');
  let node: MetadataNode = tree;
  for (const part of parts) {
    if (typeof node === 'string') return { kind: 'missing' };
    const next: MetadataNode | undefined = node[part];
    if (next === undefined) return { kind: 'missing' };
    node = next;
  }
  if (typeof node === 'string') return { kind: 'leaf', body: node };
  const listing = Object.entries(node).map(([k, v]) => (typeof v === 'string' ? k : `${k}/`));
  return { kind: 'dir', body: listing.join('\n') };
}
