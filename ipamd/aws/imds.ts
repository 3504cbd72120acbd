/**
 * IMDSv2 discovery: who this instance is and which ENIs (with their addresses and prefixes) are attached.
 * One session token is fetched and reused until it nears expiry or IMDS answers 401. Every value is
 * validated, so a malformed MAC, a missing device-number or a bad CIDR stops with a message naming it.
 */
import { request } from 'node:http';
import {
  assertCidr,
  assertEniId,
  assertInt,
  assertIpv4,
  assertMac,
  MalformedReplyError,
} from './validate.js';

export interface InstanceIdentity {
  instanceId: string;
  instanceType: string;
  availabilityZone: string;
  region: string;
  primaryMac: string;
  primaryIp: string;
}

export interface ImdsEni {
  mac: string;
  id: string;
  deviceNumber: number;
  networkCard: number;
  subnetId: string;
  subnetCidr: string;
  vpcId: string;
  vpcCidrs: string[];
  primaryIp: string;
  /** Secondary addresses only (the primary is `primaryIp`). */
  secondaryIps: string[];
  prefixes: string[];
  securityGroups: string[];
}

/**
 * One HTTP exchange with IMDS. node:http rather than fetch: fetch loads undici, ~6 MB of RSS that a
 * node daemon should not pay for a handful of link-local GETs.
 */
function httpCall(
  method: 'GET' | 'PUT',
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export class ImdsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImdsError';
  }
}

const TOKEN_TTL_SECONDS = 21600;

export interface ImdsOptions {
  timeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
}

export class Imds {
  private token: { value: string; expires: number } | null = null;
  private tokenRequest: Promise<string> | null = null;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly retryDelayMs: number;

  constructor(
    private readonly endpoint: string,
    opts: ImdsOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.attempts = opts.attempts ?? 4;
    this.retryDelayMs = opts.retryDelayMs ?? 200;
  }

  /** GET a metadata path; null when IMDS answers 404 (for example no prefixes on an ENI). */
  async get(path: string): Promise<string | null> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      try {
        const token = await this.sessionToken();
        const res = await httpCall(
          'GET',
          `${this.endpoint}/latest/meta-data/${path}`,
          { 'x-aws-ec2-metadata-token': token },
          this.timeoutMs,
        );
        const body = res.body;
        if (res.status === 200) return body;
        if (res.status === 404) return null;
        if (res.status === 401) this.token = null; // expired or revoked: fetch a new one and retry
        lastError = new ImdsError(`IMDS answered ${res.status} for ${path}`);
        if (res.status !== 401 && res.status < 500 && res.status !== 429) throw lastError;
      } catch (err) {
        if (err instanceof ImdsError && !/answered (401|429|5\d\d)/.test(err.message)) throw err;
        lastError = err;
      }
      if (attempt < this.attempts) await new Promise((r) => setTimeout(r, this.retryDelayMs * attempt));
    }
    throw new ImdsError(
      `cannot read ${path} from IMDS at ${this.endpoint}: ${(lastError as Error)?.message ?? lastError}`,
    );
  }

  /** One token request at a time: concurrent callers share it. */
  private sessionToken(): Promise<string> {
    if (this.token && this.token.expires > Date.now()) return Promise.resolve(this.token.value);
    this.tokenRequest ??= this.fetchToken().finally(() => {
      this.tokenRequest = null;
    });
    return this.tokenRequest;
  }

  private async fetchToken(): Promise<string> {
    const res = await httpCall(
      'PUT',
      `${this.endpoint}/latest/api/token`,
      { 'x-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) },
      this.timeoutMs,
    );
    const value = res.body.trim();
    if (res.status !== 200 || value === '') {
      throw new ImdsError(`IMDSv2 token request to ${this.endpoint} failed with status ${res.status}`);
    }
    // Refresh a minute early so a request never carries a token that expires on the way.
    this.token = { value, expires: Date.now() + (TOKEN_TTL_SECONDS - 60) * 1000 };
    return value;
  }

  private async required(path: string): Promise<string> {
    const v = await this.get(path);
    if (v === null || v.trim() === '') throw new MalformedReplyError(`IMDS has no value at ${path}`);
    return v.trim();
  }

  private async list(path: string): Promise<string[]> {
    const v = await this.get(path);
    if (v === null) return [];
    return v
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  async identity(): Promise<InstanceIdentity> {
    const [instanceId, instanceType, availabilityZone, mac, ip] = await Promise.all([
      this.required('instance-id'),
      this.required('instance-type'),
      this.required('placement/availability-zone'),
      this.required('mac'),
      this.required('local-ipv4'),
    ]);
    if (!/^i-[0-9a-f]{1,32}$/.test(instanceId)) {
      throw new MalformedReplyError(`malformed instance-id: ${JSON.stringify(instanceId)}`);
    }
    if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(instanceType)) {
      throw new MalformedReplyError(`malformed instance-type: ${JSON.stringify(instanceType)}`);
    }
    if (!/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/.test(availabilityZone)) {
      throw new MalformedReplyError(`malformed availability-zone: ${JSON.stringify(availabilityZone)}`);
    }
    return {
      instanceId,
      instanceType,
      availabilityZone,
      region: availabilityZone.slice(0, -1),
      primaryMac: assertMac(mac, 'primary MAC'),
      primaryIp: assertIpv4(ip, 'local-ipv4'),
    };
  }

  async macs(): Promise<string[]> {
    const entries = await this.list('network/interfaces/macs/');
    return entries.map((e) => assertMac(e.replace(/\/$/, ''), 'MAC in network/interfaces/macs/'));
  }

  async eni(mac: string): Promise<ImdsEni> {
    const base = `network/interfaces/macs/${mac}`;
    const [id, device, card, subnetId, subnetCidr, vpcId, vpcCidrs, ips, prefixes, sgs] = await Promise.all([
      this.required(`${base}/interface-id`),
      this.get(`${base}/device-number`),
      this.get(`${base}/network-card`),
      this.required(`${base}/subnet-id`),
      this.required(`${base}/subnet-ipv4-cidr-block`),
      this.get(`${base}/vpc-id`),
      this.list(`${base}/vpc-ipv4-cidr-blocks`),
      this.list(`${base}/local-ipv4s`),
      this.list(`${base}/ipv4-prefix`),
      this.list(`${base}/security-group-ids`),
    ]);
    if (device === null) throw new MalformedReplyError(`IMDS has no device-number for ENI ${mac}`);
    if (ips.length === 0) throw new MalformedReplyError(`IMDS lists no local-ipv4s for ENI ${mac}`);
    const addresses = ips.map((ip) => assertIpv4(ip, `local-ipv4s of ${mac}`));
    return {
      mac,
      id: assertEniId(id, `interface-id of ${mac}`),
      deviceNumber: assertInt(device, `device-number of ${mac}`, 0, 127),
      networkCard: card === null ? 0 : assertInt(card, `network-card of ${mac}`, 0, 31),
      subnetId: /^subnet-[0-9a-f]{1,32}$/.test(subnetId)
        ? subnetId
        : (() => {
            throw new MalformedReplyError(`malformed subnet-id of ${mac}: ${JSON.stringify(subnetId)}`);
          })(),
      subnetCidr: assertCidr(subnetCidr, `subnet-ipv4-cidr-block of ${mac}`),
      vpcId: vpcId?.trim() ?? '',
      vpcCidrs: vpcCidrs.map((c) => assertCidr(c, `vpc-ipv4-cidr-blocks of ${mac}`)),
      primaryIp: addresses[0]!,
      secondaryIps: addresses.slice(1),
      prefixes: prefixes.map((p) => assertCidr(p, `ipv4-prefix of ${mac}`)),
      securityGroups: sgs,
    };
  }

  /** Every attached ENI, sorted by device number. */
  async enis(): Promise<ImdsEni[]> {
    const macs = await this.macs();
    const enis = await Promise.all(macs.map((m) => this.eni(m)));
    return enis.sort((a, b) => a.deviceNumber - b.deviceNumber);
  }
}
