/**
 * An ENI attached behind ipamd's back (another agent, or ipamd's own before a crash) holds the device
 * index ipamd picks next. EC2 refuses that attach; ipamd must adopt the stranger at once instead of
 * retrying the same index until its periodic reconciliation (60 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd and an ENI it did not attach', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('a device index taken behind its back: adopts that ENI at once and creates no ENI storm', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node);
    await ipamd.waitServing();
    // WARM_ENI_TARGET=1: the primary's 9 addresses are the warm pool; the first pod asks for device 1.
    const subnetId = s.enisOf(node)[0]!.subnetId;
    const stray = s.vpc.state.createNetworkInterface({ subnetId, secondaryCount: 2 });
    s.vpc.state.attachNetworkInterface({ eniId: stray.id, instanceId: node.id, deviceIndex: 1 });
    const started = Date.now();
    expect((await ipamd.add('pod-1')).ok).toBe(true);

    await eventually(
      () => ipamd.events().some((e) => e.msg === 'reconcile: found an attached ENI ipamd did not know'),
      15_000,
      'the stray ENI adopted',
    );
    expect(Date.now() - started).toBeLessThan(15_000); // not the 60 s periodic reconciliation
    const adopted = ipamd
      .events()
      .find((e) => e.msg === 'reconcile: found an attached ENI ipamd did not know');
    expect(adopted).toMatchObject({ eniId: stray.id, deviceNumber: 1 });
    // Its addresses are ipamd's now, and no further attach was tried at the taken index.
    await eventually(async () => {
      const r = await ipamd.add('pod-2');
      return r.ok;
    });
    const refusals = ipamd
      .events()
      .filter((e) => String(e.err ?? e.msg).includes('already has an interface attached at device index'));
    expect(refusals.length).toBeGreaterThan(0);
    expect(refusals.length).toBeLessThanOrEqual(6); // one refused attach (logged by ec2 and pool), not a loop
    expect(s.vpc.callLog.count('CreateNetworkInterface', `AKID${node.id}`)).toBeLessThanOrEqual(2);
  });
});
