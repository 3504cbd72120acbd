/**
 * The real daemon against the local VPC: the ENIs a cold start needs are created together, each at
 * its own device index; awscni_assigned_ip_per_cidr follows pods; IPAMD_SOCKET_GROUP hands the socket
 * to a group.
 */
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario } from './fixture.js';

/** cidr -> value of every awscni_assigned_ip_per_cidr series in a /metrics page. */
function perCidr(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of metrics.matchAll(/^awscni_assigned_ip_per_cidr\{cidr="([^"]+)"\} (\d+)$/gm)) {
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe.skipIf(bundleMissing())('ipamd creating several ENIs', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('m5.4xlarge, MINIMUM_IP_TARGET=100: the three missing ENIs are created at once, then a pod shows in the per-CIDR metric', async () => {
    // Slow enough that serial creations could not overlap.
    s.vpc.faults.setLatency('CreateNetworkInterface', { ms: 400, jitterMs: 0 });
    s.vpc.faults.setLatency('AttachNetworkInterface', { ms: 300, jitterMs: 0 });
    const node = await s.launch('m5.4xlarge');
    const ipamd = s.startIpamd(node, { MINIMUM_IP_TARGET: '100', WARM_IP_TARGET: '1' });
    await ipamd.waitServing();
    await eventually(
      () =>
        s.secondaryIpCount(node) >= 100 &&
        ipamd.events().filter((e) => e.msg === 'ENI attached and ready').length === 3,
      30_000,
      '100 addresses on 4 ENIs',
    );

    const creates = s.vpc.callLog.entries({ action: 'CreateNetworkInterface', caller: `AKID${node.id}` });
    expect(creates).toHaveLength(3);
    // Every creation started before the first one finished.
    const firstDone = Math.min(...creates.map((c) => c.time + c.durationMs));
    expect(creates.every((c) => c.time < firstDone)).toBe(true);
    expect(
      ipamd.events().filter((e) => e.msg === 'pool decision' && e.action === 'create-enis'),
    ).toHaveLength(1);
    const enis = s.enisOf(node);
    expect(enis.map((e) => e.attachment?.deviceIndex).sort()).toEqual([0, 1, 2, 3]);
    expect(enis.map((e) => e.privateIps.filter((p) => !p.primary).length).sort((a, b) => a - b)).toEqual([
      13, 29, 29, 29,
    ]);

    const pod = await ipamd.add('pod-1');
    expect(pod.ok).toBe(true);
    const address = pod.result!.address as string;
    const scrape = async () =>
      perCidr((await s.vpc.exec(node, 'curl', ['-s', 'http://127.0.0.1:61678/metrics'])).stdout);
    const withPod = await scrape();
    expect(withPod.size).toBe(s.secondaryIpCount(node));
    expect(withPod.get(`${address}/32`)).toBe(1);
    expect([...withPod.values()].reduce((a, b) => a + b, 0)).toBe(1);

    expect((await ipamd.del('pod-1')).ok).toBe(true);
    expect((await scrape()).get(`${address}/32`)).toBe(0);
  });

  it('IPAMD_SOCKET_GROUP=<gid>: the socket is root:<gid> 0660; an unknown group name stops ipamd with a clear error', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { IPAMD_SOCKET_GROUP: '47111' });
    await ipamd.waitServing();
    const st = await stat(ipamd.socketPath);
    expect({ mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o660, uid: 0, gid: 47111 });
    await ipamd.kill('SIGTERM');

    const bad = s.startIpamd(node, { IPAMD_SOCKET_GROUP: 'no-such-group-vpccni' });
    await eventually(() => !bad.running, 20_000, 'ipamd to refuse the configuration');
    expect(bad.proc.exitCode).not.toBe(0);
    expect(bad.logs.join('\n')).toMatch(/IPAMD_SOCKET_GROUP="no-such-group-vpccni": no group named/);
  });
});
