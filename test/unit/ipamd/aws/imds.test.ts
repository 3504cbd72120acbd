import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Imds } from '../../../../ipamd/aws/imds.js';

/** A tiny IMDSv2: token required, values from a mutable map so each test shapes the replies. */
let server: Server;
let endpoint: string;
let tokenRequests = 0;
let unauthorizedOnce = false;
const values = new Map<string, string>();

function baseline(): void {
  values.clear();
  const m = '0a:00:00:00:00:01';
  const s = '0a:00:00:00:00:02';
  const entries = Object.entries({
    'instance-id': 'i-0abc',
    'instance-type': 'm5.large',
    'placement/availability-zone': 'us-west-2a',
    mac: m,
    'local-ipv4': '10.0.1.10',
    'network/interfaces/macs/': `${m}/\n${s}/`,
    [`network/interfaces/macs/${m}/interface-id`]: 'eni-01',
    [`network/interfaces/macs/${m}/device-number`]: '0',
    [`network/interfaces/macs/${m}/subnet-id`]: 'subnet-01',
    [`network/interfaces/macs/${m}/subnet-ipv4-cidr-block`]: '10.0.1.0/24',
    [`network/interfaces/macs/${m}/vpc-ipv4-cidr-blocks`]: '10.0.0.0/16\n100.64.0.0/16',
    [`network/interfaces/macs/${m}/local-ipv4s`]: '10.0.1.10\n10.0.1.11',
    [`network/interfaces/macs/${s}/interface-id`]: 'eni-02',
    [`network/interfaces/macs/${s}/device-number`]: '1',
    [`network/interfaces/macs/${s}/subnet-id`]: 'subnet-01',
    [`network/interfaces/macs/${s}/subnet-ipv4-cidr-block`]: '10.0.1.0/24',
    [`network/interfaces/macs/${s}/vpc-ipv4-cidr-blocks`]: '10.0.0.0/16',
    [`network/interfaces/macs/${s}/local-ipv4s`]: '10.0.1.20',
    [`network/interfaces/macs/${s}/ipv4-prefix`]: '10.0.1.48/28',
  });
  for (const [k, v] of entries) values.set(k, v);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      tokenRequests++;
      res.end(`token-${tokenRequests}`);
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== `token-${tokenRequests}` || unauthorizedOnce) {
      unauthorizedOnce = false;
      res.statusCode = 401;
      res.end();
      return;
    }
    const v = values.get((req.url ?? '').replace('/latest/meta-data/', ''));
    if (v === undefined) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    res.end(v);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('Imds', () => {
  it('discovers the instance and every ENI with one reused token', async () => {
    baseline();
    tokenRequests = 0;
    const imds = new Imds(endpoint);
    expect(await imds.identity()).toEqual({
      instanceId: 'i-0abc',
      instanceType: 'm5.large',
      availabilityZone: 'us-west-2a',
      region: 'us-west-2',
      primaryMac: '0a:00:00:00:00:01',
      primaryIp: '10.0.1.10',
    });
    const enis = await imds.enis();
    expect(enis.map((e) => [e.id, e.deviceNumber, e.secondaryIps, e.prefixes])).toEqual([
      ['eni-01', 0, ['10.0.1.11'], []],
      ['eni-02', 1, [], ['10.0.1.48/28']],
    ]);
    expect(enis[0]!.vpcCidrs).toEqual(['10.0.0.0/16', '100.64.0.0/16']);
    expect(tokenRequests).toBe(1);
  });

  it('fetches a new token when IMDS answers 401', async () => {
    baseline();
    const imds = new Imds(endpoint, { retryDelayMs: 0 });
    await imds.identity();
    const before = tokenRequests;
    unauthorizedOnce = true;
    expect(await imds.get('instance-id')).toBe('i-0abc');
    expect(tokenRequests).toBe(before + 1);
  });

  it.each([
    [
      'a malformed MAC',
      'network/interfaces/macs/',
      '0a:00:zz:00:00:01/',
      /malformed MAC in network\/interfaces\/macs\/: "0a:00:zz:00:00:01"/,
    ],
    [
      'a bad subnet CIDR',
      'network/interfaces/macs/0a:00:00:00:00:02/subnet-ipv4-cidr-block',
      '10.0.1.0/33',
      /malformed subnet-ipv4-cidr-block of 0a:00:00:00:00:02/,
    ],
    [
      'a bad device number',
      'network/interfaces/macs/0a:00:00:00:00:02/device-number',
      'one',
      /malformed device-number of 0a:00:00:00:00:02/,
    ],
  ])('rejects %s with a clear error', async (_name, key, value, message) => {
    baseline();
    values.set(key, value);
    await expect(new Imds(endpoint, { retryDelayMs: 0 }).enis()).rejects.toThrow(message);
  });

  it('rejects an ENI without a device-number', async () => {
    baseline();
    values.delete('network/interfaces/macs/0a:00:00:00:00:02/device-number');
    await expect(new Imds(endpoint).enis()).rejects.toThrow(
      'IMDS has no device-number for ENI 0a:00:00:00:00:02',
    );
  });

  it('reports an unreachable IMDS with the endpoint', async () => {
    const imds = new Imds('http://127.0.0.1:1', { attempts: 2, retryDelayMs: 0, timeoutMs: 500 });
    await expect(imds.identity()).rejects.toThrow(/cannot read .* from IMDS at http:\/\/127.0.0.1:1/);
  });
});
