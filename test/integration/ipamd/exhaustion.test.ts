import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario, sleep } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd exhaustion', () => {
  let s: Scenario;
  beforeAll(async () => {
    // 0: a roomy subnet (untagged); 1: a /28 with 11 usable addresses; 2: a /27 with no free aligned /28.
    s = await Scenario.create({ subnets: ['10.0.1.0/24', '10.0.2.0/28', '10.0.3.0/27'] });
  });
  afterAll(async () => {
    await s?.close();
  });

  it.concurrent('MAX_PODS=3: the pool stops at 3 and the 4th pod gets "node at max pods (3)"', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { MAX_PODS: '3' });
    await ipamd.waitServing();
    expect(s.secondaryIpCount(node)).toBe(3);
    for (const p of ['a', 'b', 'c']) expect((await ipamd.add(p)).ok).toBe(true);
    const fourth = await ipamd.add('d');
    expect(fourth.error).toEqual({ code: 'exhausted', message: 'no free address: node at max pods (3)' });
    // Idempotent: an existing pod asking again still gets its address.
    expect((await ipamd.add('a')).ok).toBe(true);
  });

  it.concurrent('a full subnet: pods get "subnet ... has no free addresses" and EC2 is not hammered', async () => {
    const subnet = s.vpc.subnetIds[1]!;
    const node = await s.launch('m5.large', { subnet });
    const ipamd = s.startIpamd(node, { ENABLE_SUBNET_DISCOVERY: 'false' });
    await ipamd.waitServing();
    // 11 usable - 1 primary = 10; the primary ENI took 9.
    expect(s.secondaryIpCount(node)).toBe(9);
    const replies = [];
    for (let i = 0; i < 10; i++) replies.push(await ipamd.add(`p${i}`));
    expect(replies.slice(0, 9).every((r) => r.ok)).toBe(true);
    expect(replies[9]!.error?.code).toBe('exhausted');
    expect(replies[9]!.error?.message).toMatch(new RegExp(`subnet ${subnet} has no free addresses`));
    const caller = `AKID${node.id}`;
    const before = s.vpc.callLog.count('CreateNetworkInterface', caller);
    await sleep(3000);
    // Backoff (2 s, 4 s, ...): at most a couple of attempts in 3 s, not one per pool tick (0.5 s).
    expect(s.vpc.callLog.count('CreateNetworkInterface', caller) - before).toBeLessThanOrEqual(2);
  });

  it.concurrent('a fragmented subnet in prefix mode backs off, then uses a discovered subnet', async () => {
    const node = await s.launch('m5.large', { subnet: s.vpc.subnetIds[2]! });
    const ipamd = s.startIpamd(node, { ENABLE_PREFIX_DELEGATION: 'true' });
    await eventually(
      () => ipamd.logs.some((l) => l.includes('has no free contiguous /28 block')),
      20_000,
      'InsufficientCidrBlocks logged',
    );
    // Not serving while no address can be handed out.
    expect(ipamd.events().some((e) => e.msg === 'ipamd serving')).toBe(false);
    s.vpc.state.createTags([s.vpc.subnetIds[0]!], { 'kubernetes.io/role/cni': '1' });
    await ipamd.waitServing(30_000);
    const enis = s.enisOf(node);
    expect(enis).toHaveLength(2);
    expect(enis[1]!.subnetId).toBe(s.vpc.subnetIds[0]);
    expect(enis[1]!.prefixes).toHaveLength(1);
    const r = await ipamd.add('frag-1');
    expect(r.result).toMatchObject({ deviceNumber: 1, routeTable: 2 });
  });
});
