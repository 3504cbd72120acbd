import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd shrink, cooldown and unmanaged ENIs', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it.concurrent('WARM_IP_TARGET=2: grows with pods, keeps released addresses cooling, shrinks back', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, {
      WARM_IP_TARGET: '2',
      IP_COOLDOWN_PERIOD: '2',
      IPAMD_SHRINK_INTERVAL_SECONDS: '1',
    });
    await ipamd.waitServing();
    await eventually(() => s.secondaryIpCount(node) === 2, 10_000, '2 IPs');
    const addrs: Record<string, string> = {};
    for (const p of ['a', 'b', 'c', 'd']) addrs[p] = String((await ipamd.addAsRuntime(p)).result!.address);
    await eventually(() => s.secondaryIpCount(node) === 6, 10_000, '6 IPs');
    expect((await ipamd.del('a')).result).toMatchObject({ address: addrs.a, routeTable: 254 });
    const e = await ipamd.addAsRuntime('e');
    expect(e.result!.address).not.toBe(addrs.a);
    // Deleting an unknown (already deleted) pod is success.
    expect((await ipamd.del('a')).result).toEqual({
      address: null,
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: [],
    });
    for (const p of ['b', 'c', 'd', 'e']) expect((await ipamd.del(p)).ok).toBe(true);
    await eventually(() => s.secondaryIpCount(node) === 2, 20_000, 'shrink back to 2 IPs');
    // The decision's log line travels through a pipe; EC2's state may change before it is read.
    await eventually(
      () => ipamd.events().some((x) => x.msg === 'pool decision' && x.action === 'release'),
      5_000,
      'the release decision logged',
    );
    const releases = ipamd.events().filter((x) => x.msg === 'pool decision' && x.action === 'release');
    expect(String(releases[0]!.reason)).toMatch(/above target: releasing/);
  });

  it.concurrent('WARM_ENI_TARGET=1: free ENIs are detached and deleted after pods go', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { IP_COOLDOWN_PERIOD: '1', IPAMD_SHRINK_INTERVAL_SECONDS: '1' });
    await ipamd.waitServing();
    for (let i = 0; i < 10; i++) expect((await ipamd.addAsRuntime(`w${i}`)).ok).toBe(true);
    await eventually(() => s.enisOf(node).length === 3, 20_000, '3 ENIs');
    const extra = s
      .enisOf(node)
      .slice(1)
      .map((e) => e.id);
    for (let i = 0; i < 10; i++) expect((await ipamd.del(`w${i}`)).ok).toBe(true);
    await eventually(() => s.enisOf(node).length === 1, 30_000, 'back to the primary ENI');
    // Deleted, not left behind as available ENIs.
    await eventually(() => extra.every((id) => s.vpc.state.getEni(id) === undefined), 10_000, 'ENIs deleted');
  });

  it.concurrent('an ENI tagged no_manage is left alone and counts toward the ENI limit', async () => {
    const node = await s.launch('m5.large');
    const foreign = s.vpc.state.createNetworkInterface({
      subnetId: node.subnetId,
      secondaryCount: 2,
      tags: { 'node.k8s.amazonaws.com/no_manage': 'true' },
    });
    s.vpc.state.attachNetworkInterface({ eniId: foreign.id, instanceId: node.id, deviceIndex: 1 });
    const ipamd = s.startIpamd(node);
    await ipamd.waitServing();
    expect((await ipamd.addAsRuntime('u1')).ok).toBe(true);
    await eventually(() => s.enisOf(node).length === 3, 20_000, 'a managed ENI at device 2');
    const enis = s.enisOf(node);
    expect(enis[2]!.attachment!.deviceIndex).toBe(2);
    expect(s.vpc.state.getEni(foreign.id)!.privateIps).toHaveLength(3);
    // 9 + 9 managed addresses; the unmanaged ENI's are never handed out.
    const got: string[] = [];
    for (let i = 2; i <= 19; i++) {
      const r = await ipamd.addAsRuntime(`u${i}`);
      if (r.ok) got.push(String(r.result!.address));
      else {
        expect(r.error!.code).toBe('exhausted');
        expect(r.error!.message).toMatch(/ENI limit reached: 3 of 3 ENIs/);
      }
    }
    expect(got).toHaveLength(17);
    const foreignIps = s.vpc.state.getEni(foreign.id)!.privateIps.map((p) => p.address);
    expect(got.filter((a) => foreignIps.includes(a))).toEqual([]);
  });

  it.concurrent("reconciliation adopts addresses added behind its back and drops removed free ones, never a pod's", async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { IPAMD_RECONCILE_INTERVAL_SECONDS: '1', WARM_IP_TARGET: '3' });
    await ipamd.waitServing();
    await eventually(() => s.secondaryIpCount(node) === 3, 10_000, '3 IPs');
    const held = String((await ipamd.add('r1')).result!.address);
    await eventually(() => s.secondaryIpCount(node) === 4, 10_000, '4 IPs');
    const eniId = node.primaryEniId;
    const free = s.vpc.state
      .getEni(eniId)!
      .privateIps.filter((p) => !p.primary && p.address !== held)
      .map((p) => p.address);
    s.vpc.state.unassignPrivateIpAddresses({ eniId, addresses: [free[0]!, held] });
    const corrected = await eventually(
      () => ipamd.events().find((e) => e.msg === 'reconcile: datastore corrected from EC2'),
      15_000,
      'a reconciliation',
    );
    expect(corrected.addressesRemoved).toEqual([free[0]]);
    expect(corrected.assignedButGone).toEqual([held]);
    // The pod keeps its address in ipamd: a repeated add answers the same.
    expect((await ipamd.add('r1')).result!.address).toBe(held);
    const { addresses } = s.vpc.state.assignPrivateIpAddresses({ eniId, count: 1 });
    await eventually(
      () =>
        ipamd
          .events()
          .some(
            (e) =>
              e.msg === 'reconcile: datastore corrected from EC2' &&
              String(e.addressesAdded) === addresses[0],
          ),
      15_000,
      'the new address adopted',
    );
  });
});
