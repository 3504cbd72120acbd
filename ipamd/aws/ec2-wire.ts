/**
 * EC2's Query protocol for the actions ipamd calls: SDK-shaped input -> form parameters, and the XML reply
 * (as @aws-sdk/xml-builder parses it) -> SDK-shaped output. The shapes are the SDK's own types, so the rest
 * of ipamd and its tests see exactly what @aws-sdk/client-ec2 would return; the client itself is not loaded
 * (it alone costs a daemon ~36 MB RSS). test/unit/ipamd/aws/ec2-wire.test.ts checks both directions
 * against the SDK's serializer and deserializer.
 */
import type {
  AssignPrivateIpAddressesCommandInput,
  AssignPrivateIpAddressesCommandOutput,
  AttachNetworkInterfaceCommandInput,
  AttachNetworkInterfaceCommandOutput,
  CreateNetworkInterfaceCommandInput,
  CreateNetworkInterfaceCommandOutput,
  CreateTagsCommandInput,
  CreateTagsCommandOutput,
  DeleteNetworkInterfaceCommandInput,
  DeleteNetworkInterfaceCommandOutput,
  DescribeInstanceTypesCommandInput,
  DescribeInstanceTypesCommandOutput,
  DescribeNetworkInterfacesCommandInput,
  DescribeNetworkInterfacesCommandOutput,
  DescribeSubnetsCommandInput,
  DescribeSubnetsCommandOutput,
  DetachNetworkInterfaceCommandInput,
  DetachNetworkInterfaceCommandOutput,
  ModifyNetworkInterfaceAttributeCommandInput,
  ModifyNetworkInterfaceAttributeCommandOutput,
  UnassignPrivateIpAddressesCommandInput,
  UnassignPrivateIpAddressesCommandOutput,
} from '@aws-sdk/client-ec2';

/** Every EC2 action ipamd calls, with the SDK's input and output types (the IAM policy lists the same). */
export interface Ec2Actions {
  AssignPrivateIpAddresses: [AssignPrivateIpAddressesCommandInput, AssignPrivateIpAddressesCommandOutput];
  AttachNetworkInterface: [AttachNetworkInterfaceCommandInput, AttachNetworkInterfaceCommandOutput];
  CreateNetworkInterface: [CreateNetworkInterfaceCommandInput, CreateNetworkInterfaceCommandOutput];
  CreateTags: [CreateTagsCommandInput, CreateTagsCommandOutput];
  DeleteNetworkInterface: [DeleteNetworkInterfaceCommandInput, DeleteNetworkInterfaceCommandOutput];
  DescribeInstanceTypes: [DescribeInstanceTypesCommandInput, DescribeInstanceTypesCommandOutput];
  DescribeNetworkInterfaces: [DescribeNetworkInterfacesCommandInput, DescribeNetworkInterfacesCommandOutput];
  DescribeSubnets: [DescribeSubnetsCommandInput, DescribeSubnetsCommandOutput];
  DetachNetworkInterface: [DetachNetworkInterfaceCommandInput, DetachNetworkInterfaceCommandOutput];
  ModifyNetworkInterfaceAttribute: [
    ModifyNetworkInterfaceAttributeCommandInput,
    ModifyNetworkInterfaceAttributeCommandOutput,
  ];
  UnassignPrivateIpAddresses: [
    UnassignPrivateIpAddressesCommandInput,
    UnassignPrivateIpAddressesCommandOutput,
  ];
}
export type Ec2Action = keyof Ec2Actions;
export type Ec2Input<A extends Ec2Action> = Ec2Actions[A][0];
/** The reply without the SDK's `$metadata` (the transport keeps that to itself). */
export type Ec2Output<A extends Ec2Action> = Omit<Ec2Actions[A][1], '$metadata'>;

/** Sends one EC2 action: the Query client in production, a (mocked) SDK client in unit tests. */
export interface Ec2Transport {
  send<A extends Ec2Action>(action: A, input: Ec2Input<A>): Promise<Ec2Output<A>>;
}

export const EC2_API_VERSION = '2016-11-15';

// Input members whose query name is not the member name (EC2's `queryName`/`locationName` traits).
const QUERY_NAMES: Record<string, string> = {
  NetworkInterfaceIds: 'NetworkInterfaceId',
  Filters: 'Filter',
  Values: 'Value',
  Groups: 'SecurityGroupId',
  TagSpecifications: 'TagSpecification',
  Tags: 'Tag',
  PrivateIpAddresses: 'PrivateIpAddress',
  Ipv4Prefixes: 'Ipv4Prefix',
  Resources: 'ResourceId',
  InstanceTypes: 'InstanceType',
};

/** Flattens an SDK-shaped input into EC2 query parameters: lists as `Name.1..N`, structures as `Name.Member`. */
export function toQueryParams(input: object): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (prefix: string, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (Array.isArray(value)) {
      for (const [i, v] of value.entries()) walk(`${prefix}.${i + 1}`, v);
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value))
        walk(prefix ? `${prefix}.${QUERY_NAMES[k] ?? k}` : (QUERY_NAMES[k] ?? k), v);
    } else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      out.set(prefix, String(value));
    } else {
      throw new TypeError(`cannot send ${typeof value} as EC2 parameter ${prefix}`);
    }
  };
  walk('', input);
  return out;
}

/** `application/x-www-form-urlencoded` body as AWS signs it (RFC 3986 encoding). */
export function formBody(action: Ec2Action, params: Map<string, string>): string {
  const parts = [`Action=${action}`, `Version=${EC2_API_VERSION}`];
  for (const [k, v] of params) parts.push(`${rfc3986(k)}=${rfc3986(v)}`);
  return parts.join('&');
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// Reply elements whose SDK member name is not the capitalised element name.
const MEMBER_NAMES: Record<string, string> = {
  networkInterfaceSet: 'NetworkInterfaces',
  privateIpAddressesSet: 'PrivateIpAddresses',
  ipv4PrefixSet: 'Ipv4Prefixes',
  ipv6AddressesSet: 'Ipv6Addresses',
  ipv6PrefixSet: 'Ipv6Prefixes',
  groupSet: 'Groups',
  subnetSet: 'Subnets',
  instanceTypeSet: 'InstanceTypes',
  assignedPrivateIpAddressesSet: 'AssignedPrivateIpAddresses',
  assignedIpv4PrefixSet: 'AssignedIpv4Prefixes',
};
/** Members named differently inside one list's items: a subnet's `tagSet` is the SDK's `Tags` (an ENI's is `TagSet`). */
const ITEM_MEMBER_NAMES: Record<string, Record<string, string>> = { subnetSet: { tagSet: 'Tags' } };
/** Lists that are not named `...Set`; an empty list arrives as an empty element. */
const LIST_ELEMENTS = new Set(['networkCards', 'supportedUsageClasses', 'supportedRootDeviceTypes']);
const NUMBER_MEMBERS = new Set([
  'AvailableIpAddressCount',
  'DefaultNetworkCardIndex',
  'DefaultVCpus',
  'DeviceIndex',
  'Ipv4AddressesPerInterface',
  'Ipv6AddressesPerInterface',
  'MaximumNetworkCards',
  'MaximumNetworkInterfaces',
  'NetworkCardIndex',
]);
const BOOLEAN_MEMBERS = new Set([
  'BareMetal',
  'CurrentGeneration',
  'DefaultForAz',
  'DeleteOnTermination',
  'Ipv6Supported',
  'MapPublicIpOnLaunch',
  'Primary',
  'RequesterManaged',
  'Return',
  'SourceDestCheck',
]);

/** Raised for a reply that is not what EC2 sends (the wrapper reports it as a malformed reply). */
export class Ec2ReplyError extends Error {
  override name = 'BadReply';
}

function memberName(element: string): string {
  return MEMBER_NAMES[element] ?? element.charAt(0).toUpperCase() + element.slice(1);
}

function isList(element: string): boolean {
  return element in MEMBER_NAMES || element.endsWith('Set') || LIST_ELEMENTS.has(element);
}

/**
 * One parsed reply element -> its SDK value. Only the members ipamd reads are typed (numbers, booleans);
 * other scalars stay strings, which the SDK-typed readers never look at.
 */
function fromXml(element: string, value: unknown, renames?: Record<string, string>): unknown {
  const member = memberName(element);
  if (isList(element)) {
    if (value === '' || value === undefined) return [];
    if (typeof value !== 'object' || value === null || !('item' in value)) {
      throw new Ec2ReplyError(`EC2 reply element <${element}> is not a list of <item>`);
    }
    const items = (value as { item: unknown }).item;
    const inItems = ITEM_MEMBER_NAMES[element];
    return (Array.isArray(items) ? items : [items]).map((item) => fromXml('item', item, inItems));
  }
  if (typeof value === 'string') {
    if (NUMBER_MEMBERS.has(member)) {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) {
        throw new Ec2ReplyError(`EC2 reply element <${element}> is not a number: ${JSON.stringify(value)}`);
      }
      return n;
    }
    if (BOOLEAN_MEMBERS.has(member)) {
      if (value !== 'true' && value !== 'false') {
        throw new Ec2ReplyError(`EC2 reply element <${element}> is not a boolean: ${JSON.stringify(value)}`);
      }
      return value === 'true';
    }
    return value;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Ec2ReplyError(`EC2 reply element <${element}> repeats where one value belongs`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === '#text' || k === 'xmlns') continue;
    out[renames?.[k] ?? memberName(k)] = fromXml(k, v);
  }
  return out;
}

/** A parsed `<ActionResponse>` document -> the SDK-shaped output of that action. */
export function fromReply<A extends Ec2Action>(action: A, doc: Record<string, unknown>): Ec2Output<A> {
  const root = doc[`${action}Response`];
  if (root === undefined) {
    const got = Object.keys(doc)[0] ?? 'nothing';
    throw new Ec2ReplyError(`EC2 answered ${action} with <${got}>, expected <${action}Response>`);
  }
  if (root === '') return {} as Ec2Output<A>;
  const out = fromXml(`${action}Response`, root) as Record<string, unknown>;
  delete out.RequestId;
  return out as Ec2Output<A>;
}

/** EC2's error document: `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`. */
export function errorOf(
  doc: Record<string, unknown>,
): { code: string; message: string; requestId?: string } | null {
  const res = doc.Response as { Errors?: { Error?: unknown }; RequestID?: string } | undefined;
  const first = res?.Errors?.Error;
  const e = (Array.isArray(first) ? first[0] : first) as { Code?: unknown; Message?: unknown } | undefined;
  if (!e || typeof e.Code !== 'string') return null;
  return {
    code: e.Code,
    message: typeof e.Message === 'string' ? e.Message : '',
    ...(typeof res?.RequestID === 'string' ? { requestId: res.RequestID } : {}),
  };
}
