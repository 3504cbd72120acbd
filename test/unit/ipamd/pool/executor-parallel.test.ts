/**
 * Concurrent ENI creation: the executor against a fake EC2 whose calls can be held open, so a test can
 * see which calls were in flight together, which device index each attach used, and what happens
 * when one of several creations fails.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Ec2Api, Ec2Eni } from '../../../../ipamd/aws/ec2.js';
import { Ec2Error } from '../../../../ipamd/aws/errors.js';
import type { Imds, ImdsEni } from '../../../../ipamd/aws/imds.js';
import { Datastore, type EniInfo } from '../../../../ipamd/datastore/datastore.js';
import { type HostNetwork, PoolExecutor } from '../../../../ipamd/pool/executor.js';
import { PoolManager } from '../../../../ipamd/pool/manager.js';
import { SubnetPicker } from '../../../../ipamd/pool/subnets.js';

const log = pino({ level: 'silent' });
const tick = () => new Promise((r) => setTimeout(r, 5));

/** A fake EC2: records calls and how many creations/attaches were in flight at once. */
class FakeEc2 {
  readonly calls: { api: string; args: unknown[] }[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Per-call failure injection: return an error to throw it. */
  failCreate: (n: number) => Error | null = () => null;
  failAttach: (eniId: string) => Error | null = () => null;
  private created = 0;
  private nextIp = 100;

  private async slow<T>(api: string, args: unknown[], fn: () => T): Promise<T> {
    this.calls.push({ api, args });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await tick();
      return fn();
    } finally {
      this.inFlight--;
    }
  }

  count(api: string): number {
    return this.calls.filter((c) => c.api === api).length;
  }

  macOf(n: number): string {
    return `0a:00:00:00:01:${n.toString(16).padStart(2, '0')}`;
  }

  createNetworkInterface(p: { subnetId: string; count: number; unit: string }): Promise<Ec2Eni> {
    const n = ++this.created;
    return this.slow('CreateNetworkInterface', [p], () => {
      const err = this.failCreate(n);
      if (err) throw err;
      const ips = Array.from({ length: p.count }, () => `10.0.1.${this.nextIp++}`);
      return {
        id: `eni-${n}`,
        mac: this.macOf(n),
        status: 'available',
        subnetId: p.subnetId,
        vpcId: 'vpc-1',
        primaryIp: `10.0.2.${n}`,
        secondaryIps: p.unit === 'ip' ? ips : [],
        prefixes: [],
        attachment: null,
        tags: {},
        securityGroups: ['sg-1'],
      };
    });
  }

  attachNetworkInterface(eniId: string, instanceId: string, deviceIndex: number): Promise<string> {
    return this.slow('AttachNetworkInterface', [eniId, instanceId, deviceIndex], () => {
      const err = this.failAttach(eniId);
      if (err) throw err;
      return `attach-${eniId}`;
    });
  }

  setDeleteOnTermination(eniId: string, attachmentId: string): Promise<void> {
    return this.slow('ModifyNetworkInterfaceAttribute', [eniId, attachmentId], () => undefined);
  }

  deleteNetworkInterface(eniId: string): Promise<void> {
    return this.slow('DeleteNetworkInterface', [eniId], () => undefined);
  }

  assignAddresses(eniId: string, _subnet: string, _unit: string, count: number): Promise<string[]> {
    return this.slow('AssignPrivateIpAddresses', [eniId, count], () =>
      Array.from({ length: count }, () => `10.0.1.${this.nextIp++}`),
    );
  }

  describeSubnets(): Promise<never[]> {
    return this.slow('DescribeSubnets', [], () => []);
  }

  attachedDevices(): number[] {
    return this.calls.filter((c) => c.api === 'AttachNetworkInterface').map((c) => c.args[2] as number);
  }
}

function rig(opts: { primaryIps?: number; warmEni?: number; now?: () => number } = {}) {
  const fake = new FakeEc2();
  const ec2 = fake as unknown as Ec2Api;
  const ds = new Datastore(0);
  ds.addEni({
    id: 'eni-0',
    mac: '0a:00:00:00:00:01',
    deviceNumber: 0,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.1.0/24',
    primaryIp: '10.0.1.10',
    attachmentId: null,
    isPrimary: true,
    forPods: true,
  });
  ds.addIps(
    'eni-0',
    Array.from({ length: opts.primaryIps ?? 9 }, (_, i) => `10.0.1.${20 + i}`),
  );
  // IMDS shows every ENI the fake created (the executor waits for it before setting up the host).
  const imds = {
    macs: async () => Array.from({ length: 20 }, (_, i) => fake.macOf(i + 1)),
    eni: async (mac: string) => ({ mac, subnetCidr: '10.0.1.0/24' }) as ImdsEni,
  } as unknown as Imds;
  const setUp: EniInfo[] = [];
  const host: HostNetwork = {
    setupEni: async (e) => {
      setUp.push(e);
    },
    teardownEni: async () => undefined,
  };
  const subnets = new SubnetPicker({
    primary: { subnetId: 'subnet-1', securityGroups: ['sg-1'] },
    customSubnet: null,
    discovery: null,
    ec2,
    log,
    backoffBaseMs: 1000,
    ...(opts.now ? { now: opts.now } : {}),
  });
  const identity = {
    instanceId: 'i-01',
    instanceType: 'm5.large',
    availabilityZone: 'us-west-2a',
    region: 'us-west-2',
    primaryMac: '0a:00:00:00:00:01',
    primaryIp: '10.0.1.10',
  };
  const executor = new PoolExecutor({ ec2, imds, ds, identity, subnets, host, log, eniTags: {}, pollMs: 1 });
  const pool = new PoolManager({
    ds,
    executor,
    subnets,
    log,
    mode: 'ip',
    targets: { warmEni: opts.warmEni ?? 3, warmIp: 0, minIp: 0, warmPrefix: 0 },
    limits: { maxEnis: 3, slotsPerEni: 9, maxPods: 29 },
    shrinkIntervalMs: 30_000,
    disableProvisioning: false,
    unmanagedDeviceNumbers: () => [],
  });
  return { fake, ds, executor, pool, subnets, setUp };
}

const full = (kind: 'subnet_full') =>
  new Ec2Error(kind, 'CreateNetworkInterface', 'InsufficientFreeAddressesInSubnet', 'subnet-1 is full');

describe('creating several ENIs at once', () => {
  it('WARM_ENI_TARGET=3: both missing ENIs are created together, each at its own device index', async () => {
    const { fake, ds, pool, setUp } = rig();
    await pool.tick();
    expect(fake.count('CreateNetworkInterface')).toBe(2);
    // The two creations overlapped rather than running one after the other.
    expect(fake.maxInFlight).toBe(2);
    expect(fake.attachedDevices().sort()).toEqual([1, 2]);
    expect(fake.count('ModifyNetworkInterfaceAttribute')).toBe(2);
    expect(setUp.map((e) => e.deviceNumber).sort()).toEqual([1, 2]);
    expect(ds.stats()).toMatchObject({ total: 27, ready: 27 });
    expect(pool.status.lastAction).toMatchObject({ kind: 'none' });
  });

  it('a cold start assigns to the primary ENI first, then creates the rest in one batch', async () => {
    const { fake, ds, pool } = rig({ primaryIps: 0 });
    await pool.tick();
    expect(fake.calls.map((c) => c.api).slice(0, 3)).toEqual([
      'AssignPrivateIpAddresses',
      'CreateNetworkInterface',
      'CreateNetworkInterface',
    ]);
    expect(ds.stats().total).toBe(27);
  });

  it('an attach that fails deletes only that ENI; the others are kept and the failure is reported', async () => {
    const { fake, ds, executor } = rig();
    fake.failAttach = (id) =>
      id === 'eni-2'
        ? new Ec2Error('invalid', 'AttachNetworkInterface', 'InvalidParameterValue', 'device index taken')
        : null;
    const run = executor.run({
      kind: 'create-enis',
      unit: 'ip',
      enis: [
        { deviceNumber: 1, count: 9 },
        { deviceNumber: 2, count: 9 },
        { deviceNumber: 3, count: 4 },
      ],
      reason: 'test',
    });
    await expect(run).rejects.toThrow(/1 of 3 ENI creations failed: device index taken/);
    expect(fake.calls.filter((c) => c.api === 'DeleteNetworkInterface').map((c) => c.args[0])).toEqual([
      'eni-2',
    ]);
    expect(
      ds
        .allEnis()
        .map((e) => e.id)
        .sort(),
    ).toEqual(['eni-0', 'eni-1', 'eni-3']);
    expect(ds.stats().total).toBe(9 + 9 + 4);
  });

  it('concurrent creations that find the subnet full back it off once, not once per ENI', async () => {
    let now = 1_000_000;
    const { fake, subnets, pool } = rig({ now: () => now });
    fake.failCreate = () => full('subnet_full');
    await pool.tick();
    expect(fake.count('CreateNetworkInterface')).toBe(2);
    expect(pool.status.lastError).toMatch(/2 of 2 ENI creations failed: subnet-1 is full/);
    expect(subnets.isBlocked('subnet-1')).toBe(true);
    // One failure = the base backoff (1 s); two would have doubled it to 2 s.
    now += 1_100;
    expect(subnets.isBlocked('subnet-1')).toBe(false);
  });

  it('a backing-off subnet stops the next batch before any EC2 call', async () => {
    const now = 1_000_000;
    const { fake, pool } = rig({ now: () => now });
    fake.failCreate = () => full('subnet_full');
    await pool.tick();
    const before = fake.calls.length;
    await pool.tick();
    expect(fake.calls.length).toBe(before);
    expect(pool.status.blocked).toMatchObject({ permanent: false, reason: expect.stringMatching(/full/) });
  });

  it('refuses a batch that would put two ENIs at one device index', async () => {
    const { fake, executor } = rig();
    await expect(
      executor.run({
        kind: 'create-enis',
        unit: 'ip',
        enis: [
          { deviceNumber: 2, count: 1 },
          { deviceNumber: 2, count: 1 },
        ],
        reason: 'test',
      }),
    ).rejects.toThrow(/duplicate device numbers 2, 2/);
    expect(fake.calls).toHaveLength(0);
  });
});
