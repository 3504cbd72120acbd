/**
 * EC2's eventual consistency against ipamd's datastore: for ~12 s after its creation a new ENI is
 * attached (IMDS lists it, traffic flows) but DescribeNetworkInterfaces does not show it. Neither a
 * restart nor a reconciliation inside that window may cost a pod its address, hand an address of a
 * live pod to another, forget the ENI, or send EC2 a stream of refused AssignPrivateIpAddresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { bundleMissing, eventually, type Ipamd, Scenario, sleep } from './fixture.js';

const WINDOW_MS = 12_000;

// The window applies to the whole emulator: these scenarios run one at a time.
describe.skipIf(bundleMissing())('ipamd inside EC2 consistency windows', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    s?.vpc.faults.reset();
    await s?.close();
  });

  /** Adds pods until one lands on a secondary ENI; returns every pod's address and that ENI's id. */
  async function podsOnNewEni(ipamd: Ipamd, node: Instance, count: number) {
    const addresses = new Map<string, string>();
    for (let i = 0; i < count; i++) {
      const r = await ipamd.addAsRuntime(`w${i}`);
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      addresses.set(`w${i}`, String(r.result!.address));
    }
    const eni = s.enisOf(node).find((e) => e.attachment?.deviceIndex === 1)!;
    const onEni = [...addresses].filter(([, a]) => eni.privateIps.some((p) => p.address === a));
    return { addresses, eni, onEni };
  }

  const routeTable = async (node: Instance, table: number) =>
    (await s.vpc.exec(node, 'ip', ['route', 'show', 'table', String(table)])).stdout.trim();

  it('kill -9 seconds after an ENI was created, restart inside the window: no pod loses or shares its address', async () => {
    const node = await s.launch('m5.large');
    const env = { IPAMD_RECONCILE_INTERVAL_SECONDS: '1', IP_COOLDOWN_PERIOD: '1' };
    const first = s.startIpamd(node, env);
    await first.waitServing();
    s.vpc.faults.setConsistencyWindow(WINDOW_MS);
    // 9 pods fill the primary ENI; the first makes ipamd create ENI 1, which Describe hides; 3 land on it.
    const { addresses, eni, onEni } = await podsOnNewEni(first, node, 12);
    expect(onEni.length).toBeGreaterThanOrEqual(3);
    expect(await first.kill('SIGKILL')).toBeNull();

    const second = s.startIpamd(node, env, first.dir);
    await second.waitServing();
    // Restarted inside the window: EC2 did not show the ENI.
    const hidden = second
      .events()
      .find((e) => /ENI in IMDS but not in EC2 yet/.test(String(e.msg)) && e.eniId === eni.id);
    expect(Number(hidden?.time) - eni.createdAt.getTime()).toBeLessThan(WINDOW_MS);
    // Every pod keeps its address: the replay held those on the hidden ENI (none dropped).
    expect(second.events().filter((e) => e.msg === 'checkpoint entry dropped')).toEqual([]);
    expect(second.checkpoint().allocations).toHaveLength(addresses.size);
    for (const [pod, address] of addresses) expect((await second.add(pod)).result?.address).toBe(address);
    // Reconciliation inside the window neither forgets the ENI nor tears down its routing.
    await sleep(2_000);
    expect(await routeTable(node, 2)).toMatch(/^default via /m);
    expect(second.logs.join('\n')).not.toMatch(/forgot it/);
    // A pod deleted meanwhile is released by its own DEL.
    const [gonePod, goneAddress] = onEni[0]!;
    expect((await second.del(gonePod)).result?.address).toBe(goneAddress);
    addresses.delete(gonePod);

    // Once EC2 shows the ENI, new pods get addresses, never one a live pod holds.
    await eventually(
      () =>
        second
          .events()
          .some((e) => e.msg === 'reconcile: EC2 shows the ENI; its free addresses are handed out again'),
      WINDOW_MS + 10_000,
      'EC2 to confirm the ENI',
    );
    const live = new Set(addresses.values());
    for (let i = 0; i < 10; i++) {
      const r = await second.addAsRuntime(`n${i}`);
      expect(r.ok, JSON.stringify(r.error)).toBe(true);
      const a = String(r.result!.address);
      expect(live.has(a), `${a} handed to n${i} while a live pod holds it`).toBe(false);
      live.add(a);
    }
    expect(second.checkpoint().allocations).toHaveLength(addresses.size + 10);
    s.vpc.faults.setConsistencyWindow(0);
  });

  it('reconciliation inside the window keeps the hidden ENI and its free addresses, and does not loop on EC2', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { IPAMD_RECONCILE_INTERVAL_SECONDS: '1' });
    await ipamd.waitServing();
    s.vpc.faults.setConsistencyWindow(WINDOW_MS);
    const { eni, onEni } = await podsOnNewEni(ipamd, node, 10);
    expect(onEni.length).toBeGreaterThanOrEqual(1);
    // An address of the hidden ENI goes behind ipamd's back: IMDS differs, so reconciliation asks EC2.
    const caller = `AKID${node.id}`;
    const refusedAssigns = () =>
      s.vpc.callLog.entries({ action: 'AssignPrivateIpAddresses', caller }).filter((c) => c.errorCode).length;
    const refusedBefore = refusedAssigns();
    const describesBefore = s.vpc.callLog.count('DescribeNetworkInterfaces', caller);
    const taken = eni.privateIps.find((p) => !p.primary && p.address !== onEni[0]![1])!.address;
    s.vpc.state.unassignPrivateIpAddresses({ eniId: eni.id, addresses: [taken] });
    await eventually(
      () => s.vpc.callLog.count('DescribeNetworkInterfaces', caller) > describesBefore,
      10_000,
      'a reconciliation asking EC2 inside the window',
    );
    await sleep(3_000);
    expect(Date.now() - eni.createdAt.getTime()).toBeLessThan(WINDOW_MS);
    // Neither forgotten (its routing stays) nor stripped (EC2 would refuse every re-assign: limit exceeded).
    expect(ipamd.logs.join('\n')).not.toMatch(/forgot it/);
    expect(await routeTable(node, 2)).toMatch(/^default via /m);
    expect(refusedAssigns() - refusedBefore).toBeLessThanOrEqual(1);
    // After the window EC2's view wins: the taken address leaves the pool, the pod keeps its own.
    await eventually(
      () =>
        ipamd
          .events()
          .some(
            (e) =>
              e.msg === 'reconcile: datastore corrected from EC2' &&
              (e.addressesRemoved as string[] | undefined)?.includes(taken),
          ),
      WINDOW_MS + 10_000,
      'the taken address dropped after the window',
    );
    expect((await ipamd.add(onEni[0]![0])).result?.address).toBe(onEni[0]![1]);
    s.vpc.faults.setConsistencyWindow(0);
  });
});
