// Every element the emulator writes must be one the AWS SDK's EC2 deserializer reads: each reply is
// walked against the SDK's own operation schemas, so a misspelt or misplaced field fails here instead
// of silently vanishing on the client side.
import * as sdk from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ec2Fixture, startFixture } from './helpers.js';

interface XmlEl {
  name: string;
  children: XmlEl[];
  text: string;
}

/** Parses the emulator's XML (elements and text only; the root's xmlns is the one attribute). */
function parseXml(xml: string): XmlEl {
  const root: XmlEl = { name: '#doc', children: [], text: '' };
  const stack = [root];
  const re = /<\?[^>]*\?>|<\/([\w.-]+)>|<([\w.-]+)(?:\s[^>]*)?>|([^<]+)/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) {
    const top = stack[stack.length - 1]!;
    if (m[1]) {
      if (top.name !== m[1]) throw new Error(`mismatched </${m[1]}> inside <${top.name}>`);
      stack.pop();
    } else if (m[2]) {
      const el: XmlEl = { name: m[2], children: [], text: '' };
      top.children.push(el);
      stack.push(el);
    } else if (m[3]) {
      top.text += m[3].trim();
    }
  }
  expect(stack).toHaveLength(1);
  return root.children[0]!;
}

type Schema = unknown;

function unwrap(s: Schema): { schema: Schema; traits: Record<string, unknown> } {
  let schema = typeof s === 'function' ? (s as () => Schema)() : s;
  let traits: Record<string, unknown> = {};
  if (
    Array.isArray(schema) &&
    schema.length === 2 &&
    typeof schema[1] === 'object' &&
    schema[1] !== null &&
    !Array.isArray(schema[1])
  ) {
    traits = schema[1] as Record<string, unknown>;
    schema = typeof schema[0] === 'function' ? (schema[0] as () => Schema)() : schema[0];
  }
  return { schema, traits };
}

/** Returns the paths of elements the schema does not know, and values of the wrong type. */
function check(el: XmlEl, schemaIn: Schema, path: string, problems: string[]): void {
  const { schema } = unwrap(schemaIn);
  if (schema === 'unit') {
    // Actions without output: EC2 still writes <return>true</return>, which the SDK skips.
    const extra = el.children.filter((c) => c.name !== 'return' || c.text !== 'true');
    for (const c of extra) problems.push(`${path}/${c.name}: the action has no output`);
    return;
  }
  if (Array.isArray(schema) && schema[0] === 3) {
    const names = schema[4] as string[];
    const members = schema[5] as Schema[];
    for (const child of el.children) {
      const i = names.findIndex((n, k) => (unwrap(members[k]).traits.xmlName ?? n) === child.name);
      if (i < 0) {
        problems.push(`${path}/${child.name}: not in ${schema[2] as string}`);
        continue;
      }
      check(child, members[i], `${path}/${child.name}`, problems);
    }
    return;
  }
  if (Array.isArray(schema) && schema[0] === 1) {
    const { traits } = unwrap(schema[4]);
    for (const child of el.children) {
      if (child.name !== (traits.xmlName ?? 'member'))
        problems.push(`${path}/${child.name}: list item must be <item>`);
      check(child, schema[4], `${path}/item`, problems);
    }
    return;
  }
  if (el.children.length) problems.push(`${path}: a scalar with child elements`);
  const kind = typeof schema === 'number' ? schema : Array.isArray(schema) ? schema[0] : undefined;
  if (kind === 1 && !/^-?\d+(\.\d+)?$/.test(el.text)) problems.push(`${path}: '${el.text}' is not a number`);
  if (kind === 2 && !/^(true|false)$/.test(el.text)) problems.push(`${path}: '${el.text}' is not a boolean`);
  if (kind === 4 && Number.isNaN(Date.parse(el.text)))
    problems.push(`${path}: '${el.text}' is not a timestamp`);
}

let f: Ec2Fixture;
const ids: Record<string, string> = {};

beforeAll(async () => {
  f = await startFixture();
  const s = f.state;
  const i = s.runInstance({ instanceType: 'm5.large', subnetId: f.subnetId, tags: { Name: 'n1' } });
  const eni = s.createNetworkInterface({
    subnetId: f.subnetId,
    description: 'd',
    secondaryCount: 2,
    tags: { k: 'v' },
  });
  const att = s.attachNetworkInterface({ eniId: eni.id, instanceId: i.id, deviceIndex: 1 });
  s.assignPrivateIpAddresses({ eniId: eni.id, prefixCount: 1 });
  const spare = s.createNetworkInterface({ subnetId: f.subnetId });
  const victim = s.runInstance({ instanceType: 't3.small', subnetId: f.subnetId });
  Object.assign(ids, { i: i.id, eni: eni.id, att: att.attachmentId, spare: spare.id, victim: victim.id });
});
afterAll(async () => {
  await f.close();
});

async function reply(query: string): Promise<XmlEl> {
  const r = await fetch(f.server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `Version=2016-11-15&${query}`,
  });
  const text = await r.text();
  expect(r.status, text).toBe(200);
  return parseXml(text);
}

describe('replies match the SDK schemas', () => {
  const cases: [string, () => string][] = [
    ['DescribeInstanceTypes', () => 'InstanceType.1=m5.large&InstanceType.2=c6in.32xlarge'],
    ['DescribeInstances', () => ''],
    ['DescribeSubnets', () => ''],
    ['DescribeVpcs', () => ''],
    ['DescribeNetworkInterfaces', () => 'MaxResults=5'],
    [
      'CreateNetworkInterface',
      () =>
        `SubnetId=${f.subnetId}&SecondaryPrivateIpAddressCount=1&TagSpecification.1.ResourceType=network-interface&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Value=b`,
    ],
    ['AttachNetworkInterface', () => `NetworkInterfaceId=${ids.spare}&InstanceId=${ids.i}&DeviceIndex=2`],
    ['AssignPrivateIpAddresses', () => `NetworkInterfaceId=${ids.eni}&SecondaryPrivateIpAddressCount=1`],
    [
      'UnassignPrivateIpAddresses',
      () =>
        `NetworkInterfaceId=${ids.eni}&PrivateIpAddress.1=${f.state.getEni(ids.eni!)!.privateIps[1]!.address}`,
    ],
    [
      'ModifyNetworkInterfaceAttribute',
      () =>
        `NetworkInterfaceId=${ids.eni}&Attachment.AttachmentId=${ids.att}&Attachment.DeleteOnTermination=true`,
    ],
    ['CreateTags', () => `ResourceId.1=${ids.eni}&Tag.1.Key=x&Tag.1.Value=y`],
    ['DescribeTags', () => ''],
    ['DeleteTags', () => `ResourceId.1=${ids.eni}&Tag.1.Key=x`],
    [
      'RunInstances',
      () => `ImageId=ami-1&InstanceType=t3.small&MinCount=1&MaxCount=1&SubnetId=${f.subnetId}`,
    ],
    ['ModifyInstanceMetadataOptions', () => `InstanceId=${ids.i}&HttpPutResponseHopLimit=2`],
    ['TerminateInstances', () => `InstanceId.1=${ids.victim}`],
  ];

  for (const [action, query] of cases) {
    it(action, async () => {
      const root = await reply(`Action=${action}&${query()}`);
      expect(root.name).toBe(`${action}Response`);
      expect(root.children[0]!.name).toBe('requestId');
      const op = (sdk as unknown as Record<string, unknown[]>)[`${action}$`]!;
      const output = (op[5] as () => Schema)();
      const problems: string[] = [];
      check({ ...root, children: root.children.slice(1) }, output, action, problems);
      expect(problems).toEqual([]);
      expect(root.children.length).toBeGreaterThan(1);
    });
  }

  it('the checker catches a misspelt field', () => {
    const problems: string[] = [];
    const bogus = parseXml(
      '<R><networkInterfaceSet><item><macAdress>x</macAdress></item></networkInterfaceSet></R>',
    );
    check(
      bogus,
      (sdk as unknown as Record<string, unknown>)['DescribeNetworkInterfacesResult$'],
      'R',
      problems,
    );
    expect(problems).toEqual(['R/networkInterfaceSet/item/macAdress: not in NetworkInterface']);
  });
});
