import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, rawRequest, Scenario } from './fixture.js';

// These scenarios inject faults into the shared EC2 emulator, so they run one at a time.
describe.skipIf(bundleMissing())('ipamd under EC2 faults', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('survives throttling and 5xx errors, and rejects malformed socket requests while serving', async () => {
    s.vpc.faults.setThrottling(true, {
      AssignPrivateIpAddresses: { capacity: 1, refillPerSecond: 2 },
      CreateNetworkInterface: { capacity: 1, refillPerSecond: 2 },
      mutating: { capacity: 2, refillPerSecond: 2 },
    });
    s.vpc.faults.injectError({ action: '*', httpStatus: 503, probability: 0.2 });
    try {
      const node = await s.launch('m5.large');
      const ipamd = s.startIpamd(node, { WARM_IP_TARGET: '4' });
      await ipamd.waitServing(60_000);
      const got = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const r = await eventually(
          async () => {
            const x = await ipamd.add(`t${i}`);
            if (!x.ok) expect(x.error!.code).toBe('pool_empty');
            return x.ok ? x : null;
          },
          30_000,
          `pod t${i}`,
        );
        got.add(String(r.result!.address));
      }
      expect(got.size).toBe(12);
      const text = ipamd.logs.join('\n');
      expect(text).toMatch(
        /EC2 throttled AssignPrivateIpAddresses \(RequestLimitExceeded\), retrying|EC2 server error/,
      );

      // Malformed input gets a clear error, and the daemon keeps serving.
      const garbage = await rawRequest(ipamd.socketPath, '{not json');
      expect(garbage.error!.code).toBe('bad_request');
      const noField = await rawRequest(ipamd.socketPath, JSON.stringify({ v: 1, op: 'add', network: 'n' }));
      expect(noField.error).toMatchObject({
        code: 'bad_request',
        message: expect.stringMatching(/containerId/),
      });
      const oldVersion = await rawRequest(ipamd.socketPath, JSON.stringify({ v: 0, op: 'health' }));
      expect(oldVersion.error!.code).toBe('version_mismatch');
      const health = await ipamd.request({ op: 'health' });
      expect(health.result).toMatchObject({ ready: true });
    } finally {
      s.vpc.faults.reset();
    }
  });

  it('an ENI leaked by a terminated instance is deleted by a node of the same cluster', async () => {
    const cluster = { CLUSTER_NAME: `c-${s.vpc.prefix}` };
    const doomed = await s.launch('m5.large');
    const first = s.startIpamd(doomed, cluster);
    await first.waitServing();
    // DeleteOnTermination cannot be set on the next ENI: it outlives its instance.
    s.vpc.faults.injectError({
      action: 'ModifyNetworkInterfaceAttribute',
      httpStatus: 400,
      code: 'InvalidParameterValue',
      count: 1,
    });
    expect((await first.add('x')).ok).toBe(true);
    await eventually(() => s.enisOf(doomed).length === 2, 20_000, 'second ENI on the doomed node');
    const leaked = s.enisOf(doomed)[1]!.id;
    await first.kill('SIGKILL');
    await s.vpc.terminateInstance(doomed);
    expect(s.vpc.state.getEni(leaked)!.status).toBe('available');

    const survivor = await s.launch('m5.large');
    const second = s.startIpamd(survivor, {
      ...cluster,
      // Sweeping another instance's ENIs is asked for, not the default.
      IPAMD_LEAKED_ENI_SCOPE: 'cluster',
      IPAMD_LEAKED_ENI_START_DELAY_MAX_SECONDS: '0',
      IPAMD_LEAKED_ENI_INTERVAL_SECONDS: '1',
      IPAMD_LEAKED_ENI_AGE_SECONDS: '1',
    });
    await second.waitServing();
    await eventually(() => s.vpc.state.getEni(leaked) === undefined, 20_000, 'leaked ENI deleted');
    // The log line follows the DeleteNetworkInterface reply through a pipe: wait for it, don't race it.
    await eventually(
      () => second.events().some((e) => e.msg === 'deleted leaked ENI' && e.eniId === leaked),
      5_000,
      'the deletion logged with its reason',
    );
  });
});
