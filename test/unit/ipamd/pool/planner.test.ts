import { describe, expect, it } from 'vitest';
import { defaultMaxPods, poolLimits, prefixModeProblem } from '../../../../ipamd/pool/limits.js';
import { type PlannerEni, type PlannerInput, plan } from '../../../../ipamd/pool/planner.js';
import { lookupInstanceType } from '../../../../lib/instance-types/index.js';

/** An ENI with `total` addresses of which `assigned` are in use; for IP mode, slotsUsed = total. */
function eni(dev: number, total: number, assigned = 0, over: Partial<PlannerEni> = {}): PlannerEni {
  const cooling = over.cooling ?? 0;
  const ready = total - assigned - cooling;
  return {
    id: `eni-${dev}`,
    deviceNumber: dev,
    isPrimary: dev === 0,
    forPods: true,
    slotsUsed: total,
    total,
    assigned,
    cooling,
    ready,
    freeIps: Array.from({ length: ready }, (_, i) => `10.0.${dev}.${100 + i}`),
    freePrefixes: [],
    subnetBlocked: false,
    ...over,
  };
}

/** Prefix-mode ENI: `prefixes` /28s, `assigned` addresses in use packed into the first ones. */
function peni(dev: number, prefixes: number, assigned = 0, over: Partial<PlannerEni> = {}): PlannerEni {
  const usedPrefixes = Math.ceil(assigned / 16);
  return eni(dev, prefixes * 16, assigned, {
    slotsUsed: prefixes,
    freeIps: [],
    freePrefixes: Array.from({ length: prefixes - usedPrefixes }, (_, i) => `10.${dev}.${i}.0/28`),
    ...over,
  });
}

const m5large = { maxEnis: 3, slotsPerEni: 9, maxPods: 29 };

function input(over: Partial<PlannerInput>): PlannerInput {
  const enis = over.enis ?? [eni(0, 0)];
  return {
    mode: 'ip',
    targets: { warmEni: 1, warmIp: 0, minIp: 0, warmPrefix: 0 },
    limits: m5large,
    enis,
    usedDeviceNumbers: enis.map((e) => e.deviceNumber),
    createBlockedReason: null,
    now: 100_000,
    lastShrinkAt: 0,
    shrinkIntervalMs: 30_000,
    ...over,
  };
}

const t = (warmEni: number, warmIp = 0, minIp = 0, warmPrefix = 0) => ({
  warmEni,
  warmIp,
  minIp,
  warmPrefix,
});

describe('plan (grow)', () => {
  it.each<[string, Partial<PlannerInput>, object]>([
    ['cold start, WARM_ENI_TARGET=1 fills the primary ENI', {}, { kind: 'assign', eniId: 'eni-0', count: 9 }],
    [
      'primary full and one pod: a whole new ENI at device 1',
      { enis: [eni(0, 9, 1)] },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 9 }] },
    ],
    ['a warm ENI is already there', { enis: [eni(0, 9, 1), eni(1, 9)] }, { kind: 'none' }],
    [
      'fills an existing ENI with room before creating one',
      { enis: [eni(0, 9, 9), eni(1, 3, 0)] },
      { kind: 'assign', eniId: 'eni-1', count: 6 },
    ],
    [
      'WARM_IP_TARGET=5 asks for exactly the shortfall',
      { targets: t(1, 5), enis: [eni(0, 2, 0)] },
      { kind: 'assign', eniId: 'eni-0', count: 3 },
    ],
    [
      'MINIMUM_IP_TARGET=12 with WARM_IP_TARGET=2 grows to the minimum, spilling to a new ENI',
      { targets: t(1, 2, 12), enis: [eni(0, 9, 0)] },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 3 }] },
    ],
    [
      'a free device number is chosen past unmanaged ENIs',
      { enis: [eni(0, 9, 9)], usedDeviceNumbers: [0, 1] },
      { kind: 'create-enis', enis: [{ deviceNumber: 2, count: 9 }] },
    ],
    [
      'unmanaged ENIs count toward the ENI limit',
      { enis: [eni(0, 9, 9), eni(2, 9, 9)], usedDeviceNumbers: [0, 1, 2] },
      { kind: 'blocked', permanent: true, reason: expect.stringMatching(/ENI limit reached: 3 of 3/) },
    ],
    [
      'MAX_ENI=1 stops at the primary ENI',
      { enis: [eni(0, 9, 9)], limits: { ...m5large, maxEnis: 1 } },
      { kind: 'blocked', permanent: true },
    ],
    [
      'max pods caps growth',
      { enis: [eni(0, 9, 9), eni(1, 1, 1)], limits: { ...m5large, maxPods: 10 } },
      { kind: 'blocked', permanent: true, reason: 'node at max pods (10)' },
    ],
    [
      'max pods trims the last assignment',
      { enis: [eni(0, 9, 8)], limits: { ...m5large, maxPods: 12 } },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 3 }] },
    ],
    [
      'a subnet in backoff is skipped; creation blocked gives the reason',
      {
        enis: [eni(0, 9, 9), eni(1, 2, 2, { subnetBlocked: true })],
        createBlockedReason: 'subnet subnet-1 has no free addresses (backing off 4s)',
      },
      { kind: 'blocked', permanent: false, reason: 'subnet subnet-1 has no free addresses (backing off 4s)' },
    ],
    [
      'cooling addresses do not count as ready',
      { targets: t(1, 2), enis: [eni(0, 3, 1, { cooling: 2 })] },
      { kind: 'assign', count: 2 },
    ],
    [
      'custom networking: the primary ENI is not grown',
      { enis: [eni(0, 0, 0, { forPods: false })] },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 9 }] },
    ],
  ])('%s', (_name, over, expected) => {
    expect(plan(input(over))).toMatchObject(expected);
  });
});

describe('plan (several ENIs at once)', () => {
  const m54x = { maxEnis: 8, slotsPerEni: 29, maxPods: 234 };
  it.each<[string, Partial<PlannerInput>, object]>([
    [
      'WARM_ENI_TARGET=3 with a full primary creates both missing ENIs, whole',
      { targets: t(3), enis: [eni(0, 9)] },
      {
        kind: 'create-enis',
        unit: 'ip',
        reason:
          'ready 9 below WARM_ENI_TARGET 3 (27 addresses): existing ENIs are full, creating 2 ENI(s) at once: device 1 with 9 IP(s), device 2 with 9 IP(s)',
        enis: [
          { deviceNumber: 1, count: 9 },
          { deviceNumber: 2, count: 9 },
        ],
      },
    ],
    [
      'WARM_ENI_TARGET=3 on a fresh node fills the primary ENI first',
      { targets: t(3), enis: [eni(0, 0)] },
      { kind: 'assign', eniId: 'eni-0', count: 9 },
    ],
    [
      'MINIMUM_IP_TARGET=100 on m5.4xlarge splits the shortfall over three ENIs',
      { targets: t(1, 1, 100), limits: m54x, enis: [eni(0, 29)] },
      {
        kind: 'create-enis',
        enis: [
          { deviceNumber: 1, count: 29 },
          { deviceNumber: 2, count: 29 },
          { deviceNumber: 3, count: 13 },
        ],
      },
    ],
    [
      'each ENI gets its own free device number around unmanaged ones',
      { targets: t(1, 1, 100), limits: m54x, enis: [eni(0, 29)], usedDeviceNumbers: [0, 2, 5] },
      {
        kind: 'create-enis',
        enis: [
          { deviceNumber: 1, count: 29 },
          { deviceNumber: 3, count: 29 },
          { deviceNumber: 4, count: 13 },
        ],
      },
    ],
    [
      'never more ENIs than the type still allows',
      { targets: t(1, 1, 100), enis: [eni(0, 9)], usedDeviceNumbers: [0, 1] },
      { kind: 'create-enis', enis: [{ deviceNumber: 2, count: 9 }] },
    ],
    [
      'max pods bounds the whole batch',
      { targets: t(1, 1, 100), limits: { ...m54x, maxPods: 40 }, enis: [eni(0, 29)] },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 11 }] },
    ],
    [
      'ENI mode: the last ENI is trimmed to max pods',
      { targets: t(3), limits: { ...m5large, maxPods: 20 }, enis: [eni(0, 9)] },
      {
        kind: 'create-enis',
        enis: [
          { deviceNumber: 1, count: 9 },
          { deviceNumber: 2, count: 2 },
        ],
      },
    ],
    [
      'prefix mode: a large MINIMUM_IP_TARGET spreads prefixes over new ENIs',
      {
        mode: 'prefix',
        targets: t(1, 0, 400),
        limits: { ...m5large, maxPods: 1000 },
        enis: [peni(0, 9)],
      },
      {
        kind: 'create-enis',
        unit: 'prefix',
        enis: [
          { deviceNumber: 1, count: 9 },
          { deviceNumber: 2, count: 7 },
        ],
      },
    ],
    [
      'prefix mode: max pods allows one partial prefix, on one ENI',
      { mode: 'prefix', targets: t(1, 0, 400), limits: { ...m5large, maxPods: 150 }, enis: [peni(0, 9)] },
      { kind: 'create-enis', enis: [{ deviceNumber: 1, count: 1 }] },
    ],
  ])('%s', (_name, over, expected) => {
    expect(plan(input(over))).toMatchObject(expected);
  });

  it('a batch never reuses a device number, never passes the ENI limit or max pods (random pools)', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let batches = 0;
    for (let round = 0; round < 500; round++) {
      const mode = rnd(2) === 0 ? 'ip' : 'prefix';
      const slotsPerEni = 1 + rnd(49);
      const maxEnis = 1 + rnd(15);
      const maxPods = 1 + rnd(800);
      const per = mode === 'prefix' ? 16 : 1;
      const enis = [eni(0, slotsPerEni * per, 0, { slotsUsed: slotsPerEni })];
      const unmanaged = Array.from({ length: rnd(3) }, () => 1 + rnd(maxEnis + 2));
      const inp = input({
        mode,
        targets: t(1 + rnd(5), rnd(40), rnd(900), mode === 'prefix' ? 1 + rnd(4) : 0),
        limits: { maxEnis, slotsPerEni, maxPods },
        enis,
        usedDeviceNumbers: [0, ...new Set(unmanaged)],
      });
      const a = plan(inp);
      if (a.kind !== 'create-enis') continue;
      batches++;
      const devices = a.enis.map((e) => e.deviceNumber);
      expect(new Set(devices).size).toBe(devices.length);
      for (const d of devices) expect(inp.usedDeviceNumbers).not.toContain(d);
      expect(inp.usedDeviceNumbers.length + devices.length).toBeLessThanOrEqual(maxEnis);
      const slots = a.enis.reduce((n, e) => n + e.count, 0);
      expect(slots).toBeLessThanOrEqual(Math.ceil((maxPods - enis[0]!.total) / per));
      for (const e of a.enis) expect(e.count).toBeGreaterThan(0);
      for (const e of a.enis) expect(e.count).toBeLessThanOrEqual(slotsPerEni);
    }
    expect(batches).toBeGreaterThan(50);
  });
});

describe('plan (prefix mode)', () => {
  const pd = (over: Partial<PlannerInput>) =>
    input({ mode: 'prefix', targets: t(1, 0, 0, 1), limits: { ...m5large, maxPods: 110 }, ...over });
  it.each<[string, Partial<PlannerInput>, object]>([
    ['cold start adds one prefix', { enis: [peni(0, 0)] }, { kind: 'assign', unit: 'prefix', count: 1 }],
    ['one free prefix is enough', { enis: [peni(0, 2, 16)] }, { kind: 'none' }],
    ['a used prefix triggers another', { enis: [peni(0, 1, 1)] }, { kind: 'assign', count: 1 }],
    [
      'WARM_PREFIX_TARGET=2 from empty',
      { targets: t(1, 0, 0, 2), enis: [peni(0, 0)] },
      { kind: 'assign', count: 2 },
    ],
    [
      'WARM_IP_TARGET=20 rounds up to 2 prefixes',
      { targets: t(1, 20), enis: [peni(0, 0)] },
      { kind: 'assign', count: 2 },
    ],
    [
      'releases surplus whole prefixes once the interval passed',
      { enis: [peni(0, 4, 3)] },
      { kind: 'release', unit: 'prefix', items: ['10.0.0.0/28', '10.0.1.0/28'] },
    ],
    [
      'but not within 30 s of the last shrink',
      { enis: [peni(0, 4, 3)], lastShrinkAt: 90_000 },
      { kind: 'none' },
    ],
  ])('%s', (_name, over, expected) => {
    expect(plan(pd(over))).toMatchObject(expected);
  });
});

describe('plan (shrink)', () => {
  it.each<[string, Partial<PlannerInput>, object]>([
    [
      'ENI mode deletes a second free ENI',
      { enis: [eni(0, 9, 9), eni(1, 9), eni(2, 9)] },
      { kind: 'delete-eni', eniId: 'eni-2' },
    ],
    ['ENI mode keeps the warm ENI', { enis: [eni(0, 9, 9), eni(1, 9, 0)] }, { kind: 'none' }],
    [
      'never deletes the primary ENI',
      { enis: [eni(0, 9, 0), eni(1, 9, 0)] },
      { kind: 'delete-eni', eniId: 'eni-1' },
    ],
    [
      'never deletes an ENI with cooling addresses',
      {
        enis: [eni(0, 9, 9), eni(1, 9, 0), eni(2, 9, 0), eni(3, 9, 0, { cooling: 1 })],
        limits: { ...m5large, maxEnis: 4 },
      },
      { kind: 'delete-eni', eniId: 'eni-2' },
    ],
    [
      'WARM_IP_TARGET releases surplus IPs',
      { targets: t(1, 2), enis: [eni(0, 9, 3)] },
      { kind: 'release', unit: 'ip', eniId: 'eni-0', items: expect.arrayContaining([]) },
    ],
    [
      'MINIMUM_IP_TARGET holds addresses even when WARM_IP_TARGET is exceeded',
      { targets: t(1, 2, 9), enis: [eni(0, 9, 3)] },
      { kind: 'none' },
    ],
    [
      'no shrink within the interval',
      { enis: [eni(0, 9, 9), eni(1, 9), eni(2, 9)], lastShrinkAt: 80_000 },
      { kind: 'none' },
    ],
  ])('%s', (_name, over, expected) => {
    expect(plan(input(over))).toMatchObject(expected);
  });

  it('releases exactly the surplus in WARM_IP_TARGET mode', () => {
    const a = plan(input({ targets: t(1, 2), enis: [eni(0, 9, 3)] }));
    expect(a.kind === 'release' && a.items.length).toBe(4);
  });
});

describe('limits', () => {
  it('computes the reference max pods and slots from the type table', () => {
    const m5 = lookupInstanceType('m5.large')!;
    expect(defaultMaxPods(m5, 'ip')).toBe(29);
    expect(defaultMaxPods(m5, 'prefix')).toBe(110);
    expect(defaultMaxPods(lookupInstanceType('m5.24xlarge')!, 'prefix')).toBe(250);
    expect(poolLimits(m5, { mode: 'ip', maxEni: 2, maxPods: null })).toEqual({
      maxEnis: 2,
      slotsPerEni: 9,
      maxPods: 29,
    });
    expect(poolLimits(m5, { mode: 'ip', maxEni: null, maxPods: 17 }).maxPods).toBe(17);
  });

  it('refuses prefix mode off Nitro with a clear message', () => {
    expect(prefixModeProblem(lookupInstanceType('m5.large')!)).toBeNull();
    expect(prefixModeProblem(lookupInstanceType('t2.medium')!)).toMatch(
      /needs a Nitro instance type; t2.medium runs on xen/,
    );
  });
});

describe('plan with ENIs EC2 does not confirm or reports full', () => {
  // An unconfirmed ENI's free addresses are not counted (the datastore leaves them out of total).
  const hidden = (dev: number, assigned: number) =>
    eni(dev, assigned, assigned, { slotsUsed: 9, unconfirmed: true, freeIps: [] });

  it('waits for EC2 to show a hidden ENI rather than creating another, and tells ADD to retry', () => {
    const a = plan(input({ enis: [eni(0, 9, 9), hidden(1, 2)] }));
    expect(a).toMatchObject({ kind: 'blocked', permanent: false, retrySoon: true });
    expect((a as { reason: string }).reason).toMatch(/^waiting for EC2 to confirm ENI\(s\) eni-1 /);
  });

  it('still grows a confirmed ENI with room meanwhile', () => {
    expect(plan(input({ enis: [eni(0, 5, 5), hidden(1, 2)] }))).toMatchObject({
      kind: 'assign',
      eniId: 'eni-0',
    });
  });

  it('never deletes or trims an unconfirmed ENI', () => {
    const idle = eni(1, 9, 0, { unconfirmed: true });
    const a = plan(input({ targets: t(0, 1), enis: [eni(0, 9, 0), idle] }));
    expect(a.kind === 'delete-eni' && a.eniId === 'eni-1').toBe(false);
    expect(a.kind === 'release' && a.eniId === 'eni-1').toBe(false);
  });

  it('does not grow an ENI EC2 reported full; at the ENI limit says so, retryable', () => {
    const full = eni(0, 5, 5, { ec2Full: true });
    expect(plan(input({ enis: [full] }))).toMatchObject({ kind: 'create-enis' });
    const a = plan(input({ limits: { ...m5large, maxEnis: 1 }, enis: [full] }));
    expect(a).toMatchObject({ kind: 'blocked', permanent: false, retrySoon: true });
    expect((a as { reason: string }).reason).toMatch(
      /EC2 reports ENIs full \(PrivateIpAddressLimitExceeded\)/,
    );
  });
});
