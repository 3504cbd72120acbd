/**
 * The EC2 Query-API actions: each reads its parameters (names as the AWS SDK's EC2 protocol sends
 * them), calls the model, and returns the reply body for xml.ts. Unknown parameters are ignored.
 *
 * Exports: ActionContext, ActionHandler, ACTIONS (action name -> handler).
 */
import { allInstanceTypes, lookupInstanceType } from '../../../lib/instance-types/index.js';
import { Ec2Error, invalidParameterValue, missingParameter, notFound } from './errors.js';
import { applyFilters, type FilterSpec, paginate } from './filters.js';
import type { QueryParams } from './params.js';
import {
  INSTANCE_STATE_CODES,
  instanceStateOf,
  renderEni,
  renderInstance,
  renderInstanceType,
  renderMetadataOptions,
  renderSubnet,
  renderVpc,
} from './render.js';
import {
  type Ec2State,
  type Eni,
  type Instance,
  MAX_IMDS_HOP_LIMIT,
  type Subnet,
  type Vpc,
} from './state.js';
import type { XmlValue } from './xml.js';

export interface ActionContext {
  state: Ec2State;
  params: QueryParams;
  /** True while a new ENI must stay invisible to Describe (eventual consistency). */
  hidden: (eni: Readonly<Eni>) => boolean;
}

export type ActionHandler = (ctx: ActionContext) => Record<string, XmlValue>;

const OK = { return: true };
const str = (v: unknown): string | undefined => (v === undefined ? undefined : String(v));

// ------------------------------------------------------------------ filter specs

const ENI_FILTERS: FilterSpec<Readonly<Eni>> = {
  typeName: 'DescribeNetworkInterfaces',
  tagsOf: (e) => e.tags,
  fields: {
    'network-interface-id': (e) => [e.id],
    status: (e) => [e.status],
    'vpc-id': (e) => [e.vpcId],
    'subnet-id': (e) => [e.subnetId],
    'availability-zone': (e) => [e.availabilityZone],
    description: (e) => [e.description],
    'mac-address': (e) => [e.mac],
    'owner-id': (e) => [e.ownerId],
    'requester-managed': () => ['false'],
    'source-dest-check': (e) => [String(e.sourceDestCheck)],
    'interface-type': () => ['interface'],
    'group-id': (e) => e.groups,
    'private-ip-address': (e) => e.privateIps.map((p) => p.address),
    'addresses.private-ip-address': (e) => e.privateIps.map((p) => p.address),
    'addresses.primary': (e) => e.privateIps.map((p) => String(p.primary)),
    'ipv4-prefix': (e) => e.prefixes,
    'attachment.instance-id': (e) => [e.attachment?.instanceId],
    'attachment.attachment-id': (e) => [e.attachment?.attachmentId],
    'attachment.device-index': (e) => [str(e.attachment?.deviceIndex)],
    'attachment.network-card-index': (e) => [str(e.attachment?.networkCardIndex)],
    'attachment.status': (e) => [e.attachment?.status],
    'attachment.delete-on-termination': (e) => [str(e.attachment?.deleteOnTermination)],
    'attachment.instance-owner-id': (e) => [e.attachment ? e.ownerId : undefined],
  },
};

function instanceFilters(state: Ec2State): FilterSpec<Readonly<Instance>> {
  const enis = (i: Readonly<Instance>) => state.enisOfInstance(i.id);
  return {
    typeName: 'DescribeInstances',
    tagsOf: (i) => i.tags,
    fields: {
      'instance-id': (i) => [i.id],
      'instance-type': (i) => [i.instanceType],
      'instance-state-name': (i) => [i.state],
      'instance-state-code': (i) => [String(INSTANCE_STATE_CODES[i.state])],
      'image-id': (i) => [i.imageId],
      'subnet-id': (i) => [i.state === 'running' ? i.subnetId : undefined],
      'vpc-id': (i) => [i.state === 'running' ? i.vpcId : undefined],
      'availability-zone': (i) => [i.availabilityZone],
      'private-ip-address': (i) => [i.state === 'running' ? i.privateIpAddress : undefined],
      'network-interface.network-interface-id': (i) => enis(i).map((e) => e.id),
      'network-interface.addresses.private-ip-address': (i) =>
        enis(i).flatMap((e) => e.privateIps.map((p) => p.address)),
      'network-interface.subnet-id': (i) => enis(i).map((e) => e.subnetId),
    },
  };
}

const SUBNET_FILTERS: FilterSpec<Readonly<Subnet>> = {
  typeName: 'DescribeSubnets',
  tagsOf: (s) => s.tags,
  fields: {
    'subnet-id': (s) => [s.id],
    'vpc-id': (s) => [s.vpcId],
    'availability-zone': (s) => [s.availabilityZone],
    'availability-zone-id': (s) => [s.availabilityZoneId],
    'cidr-block': (s) => [s.cidrBlock],
    cidr: (s) => [s.cidrBlock],
    cidrBlock: (s) => [s.cidrBlock],
    state: () => ['available'],
    'default-for-az': () => ['false'],
    'available-ip-address-count': (s) => [String(s.pool.available)],
  },
};

const VPC_FILTERS: FilterSpec<Readonly<Vpc>> = {
  typeName: 'DescribeVpcs',
  tagsOf: (v) => v.tags,
  fields: {
    'vpc-id': (v) => [v.id],
    'cidr-block': (v) => v.cidrBlocks,
    cidr: (v) => v.cidrBlocks,
    state: () => ['available'],
    'is-default': () => ['false'],
  },
};

interface TagRow {
  resourceId: string;
  resourceType: string;
  key: string;
  value: string;
}

const TAG_FILTERS: FilterSpec<TagRow> = {
  typeName: 'DescribeTags',
  fields: {
    key: (t) => [t.key],
    value: (t) => [t.value],
    'resource-id': (t) => [t.resourceId],
    'resource-type': (t) => [t.resourceType],
  },
};

// ------------------------------------------------------------------ helpers

function maxResults(p: QueryParams, min: number, max: number): number | undefined {
  return p.int('MaxResults', { min, max });
}

/** EC2 forbids paginating a request that names resources explicitly. */
function rejectIdsWithMaxResults(p: QueryParams, ids: string[] | undefined, idParam: string): void {
  if (ids && p.str('MaxResults') !== undefined) {
    throw new Ec2Error(
      'InvalidParameterCombination',
      `The parameter ${idParam} cannot be used with the parameter maxResults`,
    );
  }
}

function byId<T extends { id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function tagsFor(p: QueryParams, allowed: string[], type: string): Record<string, string> | undefined {
  return p.tagSpecifications(allowed).get(type);
}

// ------------------------------------------------------------------ actions

const describeInstanceTypes: ActionHandler = ({ params: p }) => {
  const names = p.list('InstanceType');
  let types = allInstanceTypes().sort((a, b) => (a.name < b.name ? -1 : 1));
  if (names) {
    const unknown = names.filter((n) => !lookupInstanceType(n));
    if (unknown.length) {
      throw new Ec2Error(
        'InvalidInstanceType',
        `The following supplied instance types do not exist: [${unknown.join(', ')}]`,
      );
    }
    types = types.filter((t) => names.includes(t.name));
  }
  types = applyFilters(types, p.filters(), {
    typeName: 'DescribeInstanceTypes',
    fields: {
      'instance-type': (t) => [t.name],
      hypervisor: (t) => [t.hypervisor],
      'bare-metal': (t) => [String(t.bareMetal)],
      'current-generation': () => ['true'],
      'network-info.maximum-network-interfaces': (t) => [
        String(t.networkCards.reduce((n, c) => n + c.maxEnis, 0)),
      ],
      'network-info.ipv4-addresses-per-interface': (t) => [String(t.ipv4PerEni)],
      'vcpu-info.default-vcpus': (t) => [str(t.vcpus ?? undefined)],
    },
  });
  // EC2 pages this listing at 100 even when MaxResults is not given.
  const { page, nextToken } = paginate(
    types,
    (t) => t.name,
    'DescribeInstanceTypes',
    maxResults(p, 5, 100) ?? 100,
    p.str('NextToken'),
  );
  return { instanceTypeSet: page.map(renderInstanceType), nextToken };
};

const describeInstances: ActionHandler = ({ state, params: p }) => {
  const ids = p.list('InstanceId');
  rejectIdsWithMaxResults(p, ids, 'instanceIds');
  let items = [...state.instances()].sort(byId);
  if (ids) {
    for (const id of ids) state.requireInstance(id);
    items = items.filter((i) => ids.includes(i.id));
  }
  items = applyFilters(items, p.filters(), instanceFilters(state));
  const { page, nextToken } = paginate(
    items,
    (i) => i.id,
    'DescribeInstances',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return {
    reservationSet: page.map((i) => ({
      reservationId: `r-${i.id.slice(2)}`,
      ownerId: state.accountId,
      groupSet: [],
      instancesSet: [renderInstance(state, i)],
    })),
    nextToken,
  };
};

const describeSubnets: ActionHandler = ({ state, params: p }) => {
  const ids = p.list('SubnetId');
  let items = [...state.subnets()].sort(byId);
  if (ids) {
    for (const id of ids) state.requireSubnet(id);
    items = items.filter((s) => ids.includes(s.id));
  }
  items = applyFilters(items, p.filters(), SUBNET_FILTERS);
  const { page, nextToken } = paginate(
    items,
    (s) => s.id,
    'DescribeSubnets',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return { subnetSet: page.map((s) => renderSubnet(state, s)), nextToken };
};

const describeVpcs: ActionHandler = ({ state, params: p }) => {
  const ids = p.list('VpcId');
  let items = [...state.vpcs()].sort(byId);
  if (ids) {
    for (const id of ids) state.requireVpc(id);
    items = items.filter((v) => ids.includes(v.id));
  }
  items = applyFilters(items, p.filters(), VPC_FILTERS);
  const { page, nextToken } = paginate(
    items,
    (v) => v.id,
    'DescribeVpcs',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return { vpcSet: page.map((v) => renderVpc(state, v)), nextToken };
};

const describeNetworkInterfaces: ActionHandler = ({ state, params: p, hidden }) => {
  const ids = p.list('NetworkInterfaceId');
  rejectIdsWithMaxResults(p, ids, 'networkInterfaceIds');
  let items = state
    .enis()
    .filter((e) => !hidden(e))
    .sort(byId);
  if (ids) {
    for (const id of ids) {
      const eni = state.requireEni(id);
      if (hidden(eni)) throw notFound('NetworkInterfaceID', 'networkInterface', id);
    }
    items = items.filter((e) => ids.includes(e.id));
  }
  items = applyFilters(items, p.filters(), ENI_FILTERS);
  const { page, nextToken } = paginate(
    items,
    (e) => e.id,
    'DescribeNetworkInterfaces',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return { networkInterfaceSet: page.map((e) => renderEni(state, e)), nextToken };
};

/** ClientToken -> the ENI its first request created: a retried create returns that ENI (EC2's idempotency). */
const createdByToken = new WeakMap<Ec2State, Map<string, string>>();

const createNetworkInterface: ActionHandler = ({ state, params: p }) => {
  const subnetId = p.requiredStr('SubnetId');
  const token = p.str('ClientToken');
  const tokens = createdByToken.get(state) ?? new Map<string, string>();
  createdByToken.set(state, tokens);
  const earlier = token === undefined ? undefined : state.getEni(tokens.get(token) ?? '');
  if (earlier) return { networkInterface: renderEni(state, earlier), clientToken: token };
  const specs = p.structs('PrivateIpAddresses').map((s) => ({
    address: s.requiredStr('PrivateIpAddress'),
    primary: s.bool('Primary') ?? false,
  }));
  const primaries = specs.filter((s) => s.primary);
  if (primaries.length > 1)
    throw invalidParameterValue('Only one private IP address can be designated as primary.');
  let primary = p.str('PrivateIpAddress');
  if (primary !== undefined && primaries[0] && primaries[0].address !== primary) {
    throw new Ec2Error(
      'InvalidParameterCombination',
      'PrivateIpAddress and the primary entry of PrivateIpAddresses name different addresses.',
    );
  }
  primary ??= primaries[0]?.address;
  const secondaries = specs.filter((s) => !s.primary && s.address !== primary).map((s) => s.address);
  const prefixes = p.structs('Ipv4Prefix').map((s) => s.requiredStr('Ipv4Prefix'));
  const eni = state.createNetworkInterface({
    subnetId,
    description: p.str('Description'),
    groups: p.list('SecurityGroupId'),
    privateIpAddress: primary,
    secondaryAddresses: secondaries.length ? secondaries : undefined,
    secondaryCount: p.int('SecondaryPrivateIpAddressCount', { min: 0 }),
    prefixes: prefixes.length ? prefixes : undefined,
    prefixCount: p.int('Ipv4PrefixCount', { min: 0 }),
    tags: tagsFor(p, ['network-interface'], 'network-interface'),
  });
  if (token !== undefined) tokens.set(token, eni.id);
  return { networkInterface: renderEni(state, eni), clientToken: token };
};

const attachNetworkInterface: ActionHandler = ({ state, params: p }) => {
  const r = state.attachNetworkInterface({
    eniId: p.requiredStr('NetworkInterfaceId'),
    instanceId: p.requiredStr('InstanceId'),
    deviceIndex: p.requiredInt('DeviceIndex', { min: 0 }),
    networkCardIndex: p.int('NetworkCardIndex', { min: 0 }),
  });
  return { attachmentId: r.attachmentId, networkCardIndex: r.networkCardIndex };
};

const detachNetworkInterface: ActionHandler = ({ state, params: p }) => {
  state.detachNetworkInterface(p.requiredStr('AttachmentId'), { force: p.bool('Force') });
  return OK;
};

const deleteNetworkInterface: ActionHandler = ({ state, params: p }) => {
  state.deleteNetworkInterface(p.requiredStr('NetworkInterfaceId'));
  return OK;
};

const modifyNetworkInterfaceAttribute: ActionHandler = ({ state, params: p }) => {
  state.modifyNetworkInterface({
    eniId: p.requiredStr('NetworkInterfaceId'),
    attachmentId: p.str('Attachment.AttachmentId'),
    deleteOnTermination: p.bool('Attachment.DeleteOnTermination'),
    groups: p.list('SecurityGroupId'),
    description: p.str('Description.Value'),
    sourceDestCheck: p.bool('SourceDestCheck.Value'),
  });
  return OK;
};

const assignPrivateIpAddresses: ActionHandler = ({ state, params: p }) => {
  const eniId = p.requiredStr('NetworkInterfaceId');
  const r = state.assignPrivateIpAddresses({
    eniId,
    addresses: p.list('PrivateIpAddress'),
    count: p.int('SecondaryPrivateIpAddressCount', { min: 1 }),
    prefixes: p.list('Ipv4Prefix'),
    prefixCount: p.int('Ipv4PrefixCount', { min: 1 }),
    allowReassignment: p.bool('AllowReassignment'),
  });
  return {
    networkInterfaceId: eniId,
    assignedPrivateIpAddressesSet: r.addresses.length
      ? r.addresses.map((privateIpAddress) => ({ privateIpAddress }))
      : undefined,
    assignedIpv4PrefixSet: r.prefixes.length ? r.prefixes.map((ipv4Prefix) => ({ ipv4Prefix })) : undefined,
  };
};

const unassignPrivateIpAddresses: ActionHandler = ({ state, params: p }) => {
  state.unassignPrivateIpAddresses({
    eniId: p.requiredStr('NetworkInterfaceId'),
    addresses: p.list('PrivateIpAddress'),
    prefixes: p.list('Ipv4Prefix'),
  });
  return OK;
};

function requiredResourceIds(p: QueryParams): string[] {
  const ids = p.list('ResourceId');
  if (!ids) throw missingParameter('ResourceId');
  return ids;
}

const createTags: ActionHandler = ({ state, params: p }) => {
  const ids = requiredResourceIds(p);
  const tags = p.tags('Tag');
  if (Object.keys(tags).length === 0) throw missingParameter('Tag');
  state.createTags(ids, tags);
  return OK;
};

const deleteTags: ActionHandler = ({ state, params: p }) => {
  const ids = requiredResourceIds(p);
  const tags: Record<string, string | undefined> = {};
  for (const t of p.structs('Tag')) tags[t.requiredStr('Key')] = t.str('Value');
  state.deleteTags(ids, tags);
  return OK;
};

const describeTags: ActionHandler = ({ state, params: p }) => {
  const rows: TagRow[] = [];
  const add = (resourceId: string, resourceType: string, tags: ReadonlyMap<string, string>) => {
    for (const [key, value] of tags) rows.push({ resourceId, resourceType, key, value });
  };
  for (const v of state.vpcs()) add(v.id, 'vpc', v.tags);
  for (const s of state.subnets()) add(s.id, 'subnet', s.tags);
  for (const i of state.instances()) add(i.id, 'instance', i.tags);
  for (const e of state.enis()) add(e.id, 'network-interface', e.tags);
  const key = (t: TagRow) => `${t.resourceId}\u0000${t.key}`;
  const sorted = applyFilters(rows, p.filters(), TAG_FILTERS).sort((a, b) => (key(a) < key(b) ? -1 : 1));
  const { page, nextToken } = paginate(
    sorted,
    key,
    'DescribeTags',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return { tagSet: page.map((t) => ({ ...t })), nextToken };
};

const runInstances: ActionHandler = ({ state, params: p }) => {
  p.requiredStr('ImageId');
  const instanceType = p.requiredStr('InstanceType');
  const min = p.requiredInt('MinCount', { min: 1, max: 20 });
  const max = p.requiredInt('MaxCount', { min: 1, max: 20 });
  if (min > max) throw invalidParameterValue('MinCount must be less than or equal to MaxCount.');
  const nic = p.structs('NetworkInterface')[0];
  const subnetId = p.str('SubnetId') ?? nic?.str('SubnetId');
  if (!subnetId) throw missingParameter('SubnetId');
  if (!lookupInstanceType(instanceType))
    throw invalidParameterValue(`Invalid value '${instanceType}' for InstanceType.`);
  const specs = p.tagSpecifications(['instance', 'network-interface', 'volume']);
  const groups = p.list('SecurityGroupId') ?? nic?.list('SecurityGroupId');
  const privateIp = p.str('PrivateIpAddress') ?? nic?.str('PrivateIpAddress');
  if (privateIp && max > 1)
    throw invalidParameterValue('PrivateIpAddress can only be given when launching one instance.');
  const hopLimit = p.int('MetadataOptions.HttpPutResponseHopLimit', { min: 1, max: MAX_IMDS_HOP_LIMIT });
  const launched: Readonly<Instance>[] = [];
  for (let n = 0; n < max; n++) {
    launched.push(
      state.runInstance({
        instanceType,
        subnetId,
        securityGroupIds: groups,
        privateIpAddress: privateIp,
        imageId: p.str('ImageId'),
        tags: specs.get('instance'),
        eniTags: specs.get('network-interface'),
        httpPutResponseHopLimit: hopLimit,
      }),
    );
  }
  return {
    reservationId: `r-${launched[0]!.id.slice(2)}`,
    ownerId: state.accountId,
    groupSet: [],
    instancesSet: launched.map((i) => renderInstance(state, i)),
  };
};

const modifyInstanceMetadataOptions: ActionHandler = ({ state, params: p }) => {
  const instanceId = p.requiredStr('InstanceId');
  const hopLimit = p.int('HttpPutResponseHopLimit', { min: 1, max: MAX_IMDS_HOP_LIMIT });
  const options = state.modifyInstanceMetadataOptions(instanceId, {
    ...(hopLimit !== undefined ? { httpPutResponseHopLimit: hopLimit } : {}),
  });
  // EC2 answers "pending": the change reaches the instance shortly after (here: at once).
  return { instanceId, instanceMetadataOptions: renderMetadataOptions(options, 'pending') };
};

const terminateInstances: ActionHandler = ({ state, params: p }) => {
  const ids = p.list('InstanceId');
  if (!ids) throw missingParameter('InstanceId');
  for (const id of ids) state.requireInstance(id);
  return {
    instancesSet: ids.map((id) => {
      const before = state.getInstance(id)!.state;
      const i = state.terminateInstance(id);
      return {
        instanceId: id,
        previousState: { code: INSTANCE_STATE_CODES[before], name: before },
        currentState: instanceStateOf(i),
      };
    }),
  };
};

export const ACTIONS: Record<string, ActionHandler> = {
  DescribeInstanceTypes: describeInstanceTypes,
  DescribeInstances: describeInstances,
  DescribeSubnets: describeSubnets,
  DescribeVpcs: describeVpcs,
  DescribeNetworkInterfaces: describeNetworkInterfaces,
  CreateNetworkInterface: createNetworkInterface,
  AttachNetworkInterface: attachNetworkInterface,
  DetachNetworkInterface: detachNetworkInterface,
  DeleteNetworkInterface: deleteNetworkInterface,
  ModifyNetworkInterfaceAttribute: modifyNetworkInterfaceAttribute,
  AssignPrivateIpAddresses: assignPrivateIpAddresses,
  UnassignPrivateIpAddresses: unassignPrivateIpAddresses,
  CreateTags: createTags,
  DeleteTags: deleteTags,
  DescribeTags: describeTags,
  RunInstances: runInstances,
  ModifyInstanceMetadataOptions: modifyInstanceMetadataOptions,
  TerminateInstances: terminateInstances,
};
