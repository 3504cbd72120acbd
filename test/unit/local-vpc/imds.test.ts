// The IMDS emulator over real HTTP: IMDSv2 token rules, the metadata tree, answers following the EC2
// model (with lag), the default caller-by-source-address resolver, and the AWS SDK's MetadataService.
import { request } from 'node:http';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Ec2State, type Instance } from '../../../infra/local-vpc/ec2/state.js';
import { type ImdsServer, startImdsServer } from '../../../infra/local-vpc/imds/server.js';

let state: Ec2State;
let imds: ImdsServer;
let m5: Readonly<Instance>;
let c6in: Readonly<Instance>;
let subnetId: string;
let clock = Date.now();

interface Res {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP exchange with IMDS; `as` picks the calling instance through the test resolver. */
function call(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  localAddress?: string,
  url = imds.url,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers, localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function token(as?: string, ttl = '60'): Promise<string> {
  const r = await call('PUT', '/latest/api/token', {
    'x-aws-ec2-metadata-token-ttl-seconds': ttl,
    ...(as ? { 'x-test-instance': as } : {}),
  });
  expect(r.status).toBe(200);
  return r.body;
}

async function get(path: string, as?: string): Promise<Res> {
  const t = await token(as);
  return call('GET', `/latest/meta-data/${path}`, {
    'x-aws-ec2-metadata-token': t,
    ...(as ? { 'x-test-instance': as } : {}),
  });
}

async function value(path: string, as?: string): Promise<string> {
  const r = await get(path, as);
  expect(r.status, `GET ${path}`).toBe(200);
  return r.body;
}

beforeAll(async () => {
  state = new Ec2State();
  const vpc = state.createVpc({ cidr: '10.0.0.0/16' });
  subnetId = state.createSubnet({ vpcId: vpc.id, cidr: '10.0.1.0/24', az: 'us-west-2b' }).id;
  m5 = state.runInstance({ instanceType: 'm5.large', subnetId });
  c6in = state.runInstance({ instanceType: 'c6in.32xlarge', subnetId });
  imds = await startImdsServer({
    state,
    // loopback callers are the m5 unless a test names another instance
    resolveInstance: (_addr, req) => (req.headers['x-test-instance'] as string | undefined) ?? m5.id,
    now: () => clock,
  });
});
afterAll(async () => {
  await imds.close();
});
afterEach(() => {
  imds.setLagMs(0);
  imds.setAllowV1(false);
  clock = Date.now();
});

describe('IMDSv2 tokens', () => {
  it('requires a TTL header of 1..21600 seconds', async () => {
    expect((await call('PUT', '/latest/api/token')).status).toBe(400);
    for (const bad of ['0', '21601', 'abc', '-5']) {
      expect(
        (await call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': bad })).status,
      ).toBe(400);
    }
    const ok = await call('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
    expect(ok.body.length).toBeGreaterThan(20);
  });

  it('refuses proxied token requests', async () => {
    const r = await call('PUT', '/latest/api/token', {
      'x-aws-ec2-metadata-token-ttl-seconds': '60',
      'x-forwarded-for': '1.2.3.4',
    });
    expect(r.status).toBe(403);
  });

  it("answers 401 without a token, with a bad one, an expired one, or another instance's", async () => {
    expect((await call('GET', '/latest/meta-data/instance-id')).status).toBe(401);
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': 'forged' })).status,
    ).toBe(401);
    const t = await token(undefined, '5');
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': t })).status,
    ).toBe(200);
    clock += 5_001;
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': t })).status,
    ).toBe(401);
    const other = await token(c6in.id);
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': other })).status,
    ).toBe(401);
  });

  it('serves IMDSv1 only when allowed, and still rejects bad tokens then', async () => {
    imds.setAllowV1(true);
    const r = await call('GET', '/latest/meta-data/instance-id');
    expect(r).toMatchObject({ status: 200, body: m5.id });
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': 'forged' })).status,
    ).toBe(401);
  });
});

describe('metadata tree', () => {
  it('answers the instance paths', async () => {
    const eni = state.getEni(m5.primaryEniId)!;
    expect(await value('instance-id')).toBe(m5.id);
    expect(await value('instance-type')).toBe('m5.large');
    expect(await value('placement/availability-zone')).toBe('us-west-2b');
    expect(await value('placement/region')).toBe('us-west-2');
    expect(await value('mac')).toBe(eni.mac);
    expect(await value('local-ipv4')).toBe(m5.privateIpAddress);
    const doc = await call('GET', '/latest/dynamic/instance-identity/document', {
      'x-aws-ec2-metadata-token': await token(),
    });
    expect(JSON.parse(doc.body)).toMatchObject({
      instanceId: m5.id,
      instanceType: 'm5.large',
      region: 'us-west-2',
      availabilityZone: 'us-west-2b',
      privateIp: m5.privateIpAddress,
      accountId: '123456789012',
    });
  });

  it('lists directories like IMDS (sub-directories end in /)', async () => {
    const top = (await value('')).split('\n');
    expect(top).toEqual(expect.arrayContaining(['instance-id', 'mac', 'network/', 'placement/']));
    const macs = await value('network/interfaces/macs/');
    expect(macs).toBe(`${state.getEni(m5.primaryEniId)!.mac}/`);
    const perMac = (await value(`network/interfaces/macs/${state.getEni(m5.primaryEniId)!.mac}`)).split('\n');
    expect(perMac).toEqual(
      expect.arrayContaining([
        'device-number',
        'interface-id',
        'local-ipv4s',
        'subnet-id',
        'vpc-ipv4-cidr-blocks',
      ]),
    );
    expect((await get('no/such/thing')).status).toBe(404);
    expect((await get('instance-id/deeper')).status).toBe(404);
  });

  it('answers the per-MAC paths; network-card and ipv4-prefix are 404 where EC2 has none', async () => {
    const eni = state.getEni(m5.primaryEniId)!;
    const base = `network/interfaces/macs/${eni.mac}`;
    expect(await value(`${base}/device-number`)).toBe('0');
    expect(await value(`${base}/interface-id`)).toBe(eni.id);
    expect(await value(`${base}/mac`)).toBe(eni.mac);
    expect(await value(`${base}/subnet-id`)).toBe(subnetId);
    expect(await value(`${base}/subnet-ipv4-cidr-block`)).toBe('10.0.1.0/24');
    expect(await value(`${base}/vpc-id`)).toBe(eni.vpcId);
    expect(await value(`${base}/vpc-ipv4-cidr-block`)).toBe('10.0.0.0/16');
    expect(await value(`${base}/vpc-ipv4-cidr-blocks`)).toBe('10.0.0.0/16');
    expect(await value(`${base}/security-group-ids`)).toBe(eni.groups.join('\n'));
    expect((await get(`${base}/network-card`)).status).toBe(404);
    expect((await get(`${base}/ipv4-prefix`)).status).toBe(404);
    const c6Mac = state.getEni(c6in.primaryEniId)!.mac;
    expect(await value(`network/interfaces/macs/${c6Mac}/network-card`, c6in.id)).toBe('0');
  });
});

describe('following EC2', () => {
  it('shows attached ENIs, their addresses (primary first) and prefixes, and drops detached ones', async () => {
    const eni = state.createNetworkInterface({ subnetId });
    const { attachmentId } = state.attachNetworkInterface({
      eniId: eni.id,
      instanceId: m5.id,
      deviceIndex: 1,
    });
    const base = `network/interfaces/macs/${eni.mac}`;
    expect((await value('network/interfaces/macs/')).split('\n')).toHaveLength(2);
    expect(await value(`${base}/device-number`)).toBe('1');
    const added = state.assignPrivateIpAddresses({ eniId: eni.id, count: 2 }).addresses;
    expect((await value(`${base}/local-ipv4s`)).split('\n')).toEqual([eni.privateIps[0]!.address, ...added]);
    const { prefixes } = state.assignPrivateIpAddresses({ eniId: eni.id, prefixCount: 2 });
    expect((await value(`${base}/ipv4-prefix`)).split('\n')).toEqual(prefixes);
    state.unassignPrivateIpAddresses({ eniId: eni.id, prefixes });
    expect((await get(`${base}/ipv4-prefix`)).status).toBe(404);
    state.detachNetworkInterface(attachmentId);
    expect((await get(base)).status).toBe(404);
    expect((await value('network/interfaces/macs/')).split('\n')).toHaveLength(1);
  });

  it('follows security-group changes and forgets a terminated instance', async () => {
    const sg = state.createSecurityGroup({ vpcId: state.getInstance(m5.id)!.vpcId });
    state.modifyNetworkInterface({ eniId: m5.primaryEniId, groups: [sg] });
    const mac = state.getEni(m5.primaryEniId)!.mac;
    expect(await value(`network/interfaces/macs/${mac}/security-group-ids`)).toBe(sg);
    const doomed = state.runInstance({ instanceType: 't3.small', subnetId });
    expect(await value('instance-id', doomed.id)).toBe(doomed.id);
    state.terminateInstance(doomed.id);
    expect((await get('instance-id', doomed.id)).status).toBe(404);
  });

  it('lags EC2 by lagMs', async () => {
    imds.setLagMs(1_000);
    const mac = state.getEni(m5.primaryEniId)!.mac;
    const path = `network/interfaces/macs/${mac}/local-ipv4s`;
    const before = await value(path);
    const changedAt = Date.now();
    const [added] = state.assignPrivateIpAddresses({ eniId: m5.primaryEniId, count: 1 }).addresses;
    expect(await value(path)).toBe(before);
    let seenAfter = -1;
    while (Date.now() - changedAt < 3_000) {
      if ((await value(path)).split('\n').includes(added!)) {
        seenAfter = Date.now() - changedAt;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(seenAfter).toBeGreaterThanOrEqual(1_000);
    expect(seenAfter).toBeLessThan(3_000);
  });
});

describe('faults and counts', () => {
  it('fails the next N matching requests and counts requests per path', async () => {
    imds.resetCounts();
    imds.injectError({ status: 503, count: 2, pathPrefix: '/latest/meta-data/network/' });
    const t = await token();
    const macs = () =>
      call('GET', '/latest/meta-data/network/interfaces/macs/', { 'x-aws-ec2-metadata-token': t });
    expect((await macs()).status).toBe(503);
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': t })).status,
    ).toBe(200);
    expect((await macs()).status).toBe(503);
    expect((await macs()).status).toBe(200);
    expect(imds.requestCount('/latest/meta-data/network/')).toBe(3);
    expect(imds.requestCount('/latest/api/token')).toBe(1);
    expect(imds.requestCount()).toBe(5);
    expect(() => imds.injectError({ count: 1, probability: 1 })).toThrow(/exactly one/);
    imds.injectError({ probability: 1 });
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': t })).status,
    ).toBe(500);
    imds.clearErrors();
    expect(
      (await call('GET', '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': t })).status,
    ).toBe(200);
  });
});

describe('callers and clients', () => {
  it('identifies the caller by source address by default', async () => {
    const s = new Ec2State();
    const vpc = s.createVpc({ cidr: '127.0.0.0/16' });
    const sub = s.createSubnet({ vpcId: vpc.id, cidr: '127.0.0.0/24' });
    const a = s.runInstance({ instanceType: 't3.small', subnetId: sub.id, privateIpAddress: '127.0.0.10' });
    const b = s.runInstance({ instanceType: 't3.small', subnetId: sub.id, privateIpAddress: '127.0.0.11' });
    const server = await startImdsServer({ state: s, allowV1: true });
    try {
      expect((await call('GET', '/latest/meta-data/instance-id', {}, '127.0.0.10', server.url)).body).toBe(
        a.id,
      );
      expect((await call('GET', '/latest/meta-data/instance-id', {}, '127.0.0.11', server.url)).body).toBe(
        b.id,
      );
      expect((await call('GET', '/latest/meta-data/instance-id', {}, '127.0.0.12', server.url)).status).toBe(
        404,
      );
    } finally {
      await server.close();
    }
  });

  it('works with the AWS SDK MetadataService (IMDSv2)', async () => {
    const svc = new MetadataService({ endpoint: imds.url, retries: 0 });
    expect(await svc.request('/latest/meta-data/instance-id', {})).toBe(m5.id);
    expect(await svc.request('/latest/meta-data/placement/availability-zone', {})).toBe('us-west-2b');
  });

  it('is found by MetadataService through AWS_EC2_METADATA_SERVICE_ENDPOINT', async () => {
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    try {
      const svc = new MetadataService({ retries: 0 });
      expect(await svc.request('/latest/meta-data/instance-type', {})).toBe('m5.large');
    } finally {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
    }
  });
});
