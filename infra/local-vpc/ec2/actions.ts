/**
 * The EC2 Query-API actions: each reads its parameters (names as the AWS SDK's EC2 protocol sends
 * them; the server has already refused any the service model does not define), calls the model,
 * and returns the reply body for xml.ts. Every action that names a network interface answers
 * InvalidNetworkInterfaceID.NotFound for one still inside its eventual-consistency window, as EC2
 * may ("Eventual consistency in the Amazon EC2 API").
 *
 * Exports: ActionContext, ActionHandler, ACTIONS (action name -> handler).
 */
import { createHash } from 'node:crypto';
import { allInstanceTypes, lookupInstanceType } from '../../../lib/instance-types/index.js';
import { Ec2Error, invalidParameterValue, missingParameter, notFound } from './errors.js';
import { applyFilters, type FilterSpec, paginate } from './filters.js';
import type { QueryParams } from './params.js';
import {
  dnsName,
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
  /** True while a new ENI has not propagated: every call naming it answers NotFound. */
  hidden: (eni: Readonly<Eni>) => boolean;
}

export type ActionHandler = (ctx: ActionContext) => Record<string, XmlValue>;

const OK = { return: true };
const str = (v: unknown): string | undefined => (v === undefined ? undefined : String(v));

// ------------------------------------------------------------------ filter specs

const ENI_FILTERS: FilterSpec<EniRow> = {
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
    // Nothing in this VPC creates interfaces on a user's behalf.
    'requester-id': () => [],
    'source-dest-check': (e) => [String(e.sourceDestCheck)],
    'interface-type': () => ['interface'],
    'group-id': (e) => e.groups,
    'private-ip-address': (e) => e.privateIps.map((p) => p.address),
    'private-dns-name': (e) => e.privateIps.filter((p) => p.primary).map((p) => e.dnsNames[p.address]),
    'addresses.private-ip-address': (e) => e.privateIps.map((p) => p.address),
    'addresses.primary': (e) => e.privateIps.map((p) => String(p.primary)),
    'availability-zone-id': (e) => [e.availabilityZoneId],
    'attachment.instance-id': (e) => [e.attachment?.instanceId],
    'attachment.attachment-id': (e) => [e.attachment?.attachmentId],
    'attachment.attach-time': (e) => [e.attachment?.attachTime.toISOString()],
    'attachment.device-index': (e) => [str(e.attachment?.deviceIndex)],
    'attachment.status': (e) => [e.attachment?.status],
    'attachment.delete-on-termination': (e) => [str(e.attachment?.deleteOnTermination)],
    'attachment.instance-owner-id': (e) => [e.attachment ? e.ownerId : undefined],
    // No Elastic IPs, IPv6 or managed (operator) interfaces here: these match no interface.
    'association.allocation-id': () => [],
    'association.association-id': () => [],
    'association.ip-owner-id': () => [],
    'association.public-dns-name': () => [],
    'association.public-ip': () => [],
    'addresses.association.owner-id': () => [],
    'addresses.association.public-ip': () => [],
    'ipv6-addresses.ipv6-address': () => [],
    'operator.managed': () => ['false'],
    'operator.principal': () => [],
  },
};

/** An ENI with what its filters read that the record does not hold. */
type EniRow = Readonly<Eni> & { availabilityZoneId: string | undefined; dnsNames: Record<string, string> };

function eniRow(state: Ec2State, e: Readonly<Eni>): EniRow {
  const dnsNames: Record<string, string> = {};
  for (const p of e.privateIps) dnsNames[p.address] = dnsName(state, p.address);
  return { ...e, availabilityZoneId: state.getSubnet(e.subnetId)?.availabilityZoneId, dnsNames };
}

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
    state: () => ['available'],
    'default-for-az': () => ['false'],
    'map-public-ip-on-launch': () => ['false'],
    'ipv6-native': () => ['false'],
    'available-ip-address-count': (s) => [String(s.pool.available)],
  },
};

const VPC_FILTERS: FilterSpec<Readonly<Vpc>> = {
  typeName: 'DescribeVpcs',
  tagsOf: (v) => v.tags,
  fields: {
    'vpc-id': (v) => [v.id],
    cidr: (v) => v.cidrBlocks,
    'cidr-block-association.cidr-block': (v) => v.cidrBlocks,
    'cidr-block-association.state': (v) => v.cidrBlocks.map(() => 'associated'),
    state: () => ['available'],
    'is-default': () => ['false'],
  },
};

interface TagRow {
  resourceId: string;
  resourceType: string;
  key: string;
  value: string;
  /** All tags of the row's resource, for `tag:<key>`. */
  resourceTags: ReadonlyMap<string, string>;
}

const TAG_FILTERS: FilterSpec<TagRow> = {
  typeName: 'DescribeTags',
  tagsOf: (t) => t.resourceTags,
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
    for (const id of ids) visibleEni({ state, hidden }, id);
    items = items.filter((e) => ids.includes(e.id));
  }
  items = applyFilters(
    items.map((e) => eniRow(state, e)),
    p.filters(),
    ENI_FILTERS,
  );
  const { page, nextToken } = paginate(
    items,
    (e) => e.id,
    'DescribeNetworkInterfaces',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return { networkInterfaceSet: page.map((e) => renderEni(state, e)), nextToken };
};

/**
 * The ENI `id` as a call that names it sees it: InvalidNetworkInterfaceID.NotFound while it has not
 * propagated (its consistency window), else the record (or the usual Malformed/NotFound).
 */
function visibleEni(ctx: Pick<ActionContext, 'state' | 'hidden'>, id: string): Eni {
  const eni = ctx.state.requireEni(id);
  if (ctx.hidden(eni)) throw notFound('NetworkInterfaceID', 'networkInterface', id);
  return eni;
}

/**
 * ClientToken idempotency ("Ensuring idempotency in Amazon EC2 API requests"): a token is at most 64
 * ASCII characters; a retry with the same token and the same parameters returns the first result
 * without doing anything again; the same token with other parameters is IdempotentParameterMismatch.
 * Tokens are kept per model (for the emulator's lifetime, longer than EC2's 24 hours).
 */
interface TokenRecord {
  action: string;
  fingerprint: string;
  resultId: string;
}
const tokensByState = new WeakMap<Ec2State, Map<string, TokenRecord>>();
const MAX_CLIENT_TOKEN = 64;

function clientToken(p: QueryParams): string | undefined {
  const token = p.str('ClientToken');
  if (token === undefined) return undefined;
  if (token.length > MAX_CLIENT_TOKEN || !/^[\x20-\x7e]*$/.test(token)) {
    throw new Ec2Error(
      'InvalidClientToken',
      `The client token '${token}' is not valid: a client token is up to ${MAX_CLIENT_TOKEN} ASCII characters.`,
    );
  }
  return token;
}

/** Every parameter but the token itself (and DryRun, which never reaches an action), in key order. */
function fingerprint(p: QueryParams): string {
  const rows = [...p.raw]
    .filter(([k]) => k !== 'ClientToken' && k !== 'Action' && k !== 'Version' && k !== 'DryRun')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}

/** The id an earlier request with this token produced, or undefined; mismatch when it differed. */
function earlierResult(state: Ec2State, action: string, p: QueryParams, token: string | undefined) {
  if (token === undefined) return undefined;
  const record = tokensByState.get(state)?.get(token);
  if (!record) return undefined;
  if (record.action !== action || record.fingerprint !== fingerprint(p)) {
    throw new Ec2Error(
      'IdempotentParameterMismatch',
      `The client token '${token}' was used earlier with different parameters.`,
    );
  }
  return record.resultId;
}

function rememberToken(state: Ec2State, action: string, p: QueryParams, token: string, resultId: string) {
  const tokens = tokensByState.get(state) ?? new Map<string, TokenRecord>();
  tokensByState.set(state, tokens);
  tokens.set(token, { action, fingerprint: fingerprint(p), resultId });
}

const createNetworkInterface: ActionHandler = ({ state, params: p }) => {
  const subnetId = p.requiredStr('SubnetId');
  const token = clientToken(p);
  const earlierId = earlierResult(state, 'CreateNetworkInterface', p, token);
  if (earlierId !== undefined) {
    const earlier = state.getEni(earlierId);
    // The ENI was deleted since: the retry still answers with what the first request created.
    if (earlier) return { networkInterface: renderEni(state, earlier), clientToken: token };
    throw notFound('NetworkInterfaceID', 'networkInterface', earlierId);
  }
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
  if (token !== undefined) rememberToken(state, 'CreateNetworkInterface', p, token, eni.id);
  return { networkInterface: renderEni(state, eni), clientToken: token };
};

const attachNetworkInterface: ActionHandler = ({ state, params: p, hidden }) => {
  const eniId = visibleEni({ state, hidden }, p.requiredStr('NetworkInterfaceId')).id;
  const r = state.attachNetworkInterface({
    eniId,
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

const deleteNetworkInterface: ActionHandler = ({ state, params: p, hidden }) => {
  state.deleteNetworkInterface(visibleEni({ state, hidden }, p.requiredStr('NetworkInterfaceId')).id);
  return OK;
};

const modifyNetworkInterfaceAttribute: ActionHandler = ({ state, params: p, hidden }) => {
  state.modifyNetworkInterface({
    eniId: visibleEni({ state, hidden }, p.requiredStr('NetworkInterfaceId')).id,
    attachmentId: p.str('Attachment.AttachmentId'),
    deleteOnTermination: p.bool('Attachment.DeleteOnTermination'),
    groups: p.list('SecurityGroupId'),
    description: p.str('Description.Value'),
    sourceDestCheck: p.bool('SourceDestCheck.Value'),
  });
  return OK;
};

const assignPrivateIpAddresses: ActionHandler = ({ state, params: p, hidden }) => {
  const eniId = visibleEni({ state, hidden }, p.requiredStr('NetworkInterfaceId')).id;
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

const unassignPrivateIpAddresses: ActionHandler = ({ state, params: p, hidden }) => {
  state.unassignPrivateIpAddresses({
    eniId: visibleEni({ state, hidden }, p.requiredStr('NetworkInterfaceId')).id,
    addresses: p.list('PrivateIpAddress'),
    prefixes: p.list('Ipv4Prefix'),
  });
  return OK;
};

/** CreateTags / DeleteTags take up to 1000 resource ids and 1000 tags (their API reference pages). */
const MAX_TAG_BATCH = 1000;

function requiredResourceIds(ctx: Pick<ActionContext, 'state' | 'hidden' | 'params'>): string[] {
  const ids = ctx.params.list('ResourceId');
  if (!ids) throw missingParameter('ResourceId');
  if (ids.length > MAX_TAG_BATCH)
    throw invalidParameterValue(`Too many resource IDs (${ids.length}); the limit is ${MAX_TAG_BATCH}.`);
  for (const id of ids) if (id.startsWith('eni-')) visibleEni(ctx, id);
  return ids;
}

const createTags: ActionHandler = (ctx) => {
  const ids = requiredResourceIds(ctx);
  const tags = ctx.params.tags('Tag');
  if (Object.keys(tags).length === 0) throw missingParameter('Tag');
  ctx.state.createTags(ids, tags);
  return OK;
};

const deleteTags: ActionHandler = (ctx) => {
  const ids = requiredResourceIds(ctx);
  const specs = ctx.params.structs('Tag');
  if (specs.length > MAX_TAG_BATCH)
    throw invalidParameterValue(`Too many tags (${specs.length}); the limit is ${MAX_TAG_BATCH}.`);
  let tags: Record<string, string | undefined> | undefined;
  if (specs.length > 0) {
    tags = {};
    for (const t of specs) {
      const key = t.requiredStr('Key');
      if (key.toLowerCase().startsWith('aws:'))
        throw new Ec2Error('InvalidTagKey.Malformed', `Tags with the aws: prefix cannot be deleted: ${key}`);
      tags[key] = t.str('Value');
    }
  }
  ctx.state.deleteTags(ids, tags);
  return OK;
};

const describeTags: ActionHandler = ({ state, params: p, hidden }) => {
  const rows: TagRow[] = [];
  const add = (resourceId: string, resourceType: string, tags: ReadonlyMap<string, string>) => {
    for (const [key, value] of tags) rows.push({ resourceId, resourceType, key, value, resourceTags: tags });
  };
  for (const v of state.vpcs()) add(v.id, 'vpc', v.tags);
  for (const s of state.subnets()) add(s.id, 'subnet', s.tags);
  for (const i of state.instances()) add(i.id, 'instance', i.tags);
  for (const e of state.enis()) if (!hidden(e)) add(e.id, 'network-interface', e.tags);
  const key = (t: TagRow) => `${t.resourceId}\u0000${t.key}`;
  const sorted = applyFilters(rows, p.filters(), TAG_FILTERS).sort((a, b) => (key(a) < key(b) ? -1 : 1));
  const { page, nextToken } = paginate(
    sorted,
    key,
    'DescribeTags',
    maxResults(p, 5, 1000),
    p.str('NextToken'),
  );
  return {
    tagSet: page.map(({ resourceId, resourceType, key, value }) => ({
      resourceId,
      resourceType,
      key,
      value,
    })),
    nextToken,
  };
};

function renderReservation(state: Ec2State, launched: Readonly<Instance>[]): Record<string, XmlValue> {
  return {
    reservationId: `r-${launched[0]!.id.slice(2)}`,
    ownerId: state.accountId,
    groupSet: [],
    instancesSet: launched.map((i) => renderInstance(state, i)),
  };
}

const runInstances: ActionHandler = ({ state, params: p }) => {
  const token = clientToken(p);
  const earlier = earlierResult(state, 'RunInstances', p, token);
  if (earlier !== undefined) {
    const instances = earlier.split(',').map((id) => state.getInstance(id)!);
    if (instances.some((i) => i.state === 'terminated')) {
      throw new Ec2Error(
        'IdempotentInstanceTerminated',
        `The client token '${token}' launched instances that have since been terminated.`,
      );
    }
    return renderReservation(state, instances);
  }
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
  if (token !== undefined)
    rememberToken(state, 'RunInstances', p, token, launched.map((i) => i.id).join(','));
  return renderReservation(state, launched);
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
