import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, type Reply, Scenario, sleep } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd restarts', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    s?.vpc.faults.reset();
    await s?.close();
  });

  it('kill -9 in the middle of allocation: after restart nothing is lost or double-assigned', async () => {
    const node = await s.launch('m5.large');
    const env = {
      IPAMD_LEAKED_ENI_INTERVAL_SECONDS: '1',
      IPAMD_LEAKED_ENI_AGE_SECONDS: '1',
      IPAMD_LEAKED_ENI_START_DELAY_MAX_SECONDS: '0',
    };
    const first = s.startIpamd(node, env);
    await first.waitServing();
    // Slow ENI creation so the kill lands while an ENI is being created and attached.
    s.vpc.faults.setLatency('CreateNetworkInterface', { ms: 400 });
    s.vpc.faults.setLatency('AttachNetworkInterface', { ms: 400 });
    const pods = Array.from({ length: 14 }, (_, i) => `k${i}`);
    const replies = await Promise.all(pods.map((p) => first.add(p)));
    const acked = new Map<string, string>();
    replies.forEach((r: Reply, i) => {
      if (r.ok) acked.set(pods[i]!, String(r.result!.address));
      else expect(r.error!.code).toBe('pool_empty');
    });
    expect(acked.size).toBe(9);
    await sleep(300);
    expect(await first.kill('SIGKILL')).toBeNull();
    s.vpc.faults.reset();

    const second = s.startIpamd(node, env, first.dir);
    await second.waitServing();
    // Every acknowledged pod keeps its address (idempotent add after restart).
    for (const [pod, address] of acked) {
      const r = await second.add(pod);
      expect(r.result!.address).toBe(address);
    }
    // The rest get addresses too, all distinct and all on this node's ENIs.
    const all = new Map(acked);
    for (const pod of pods.filter((p) => !acked.has(p))) {
      const r = await eventually(
        async () => {
          const x = await second.add(pod);
          return x.ok ? x : null;
        },
        20_000,
        `address for ${pod}`,
      );
      all.set(pod, String(r.result!.address));
    }
    expect(new Set(all.values()).size).toBe(pods.length);
    const onNode = new Set(s.enisOf(node).flatMap((e) => e.privateIps.map((p) => p.address)));
    for (const a of all.values()) expect(onNode.has(a)).toBe(true);
    expect(second.checkpoint().allocations).toHaveLength(pods.length);
    // An ENI created but never attached before the kill is cleaned up; none is left available.
    await eventually(
      () =>
        s.vpc.state
          .enis()
          .every(
            (e) => e.status !== 'available' || e.tags.get('node.k8s.amazonaws.com/instance_id') !== node.id,
          ),
      20_000,
      'no leaked ENI of this node',
    );
  });

  it('SIGTERM: finishes in-flight work, flushes the checkpoint and exits 0; restart replays it', async () => {
    const node = await s.launch('m5.large');
    const first = s.startIpamd(node);
    await first.waitServing();
    const r = await first.add('g1', { podNamespace: 'prod', podName: 'web-0' });
    const gone = await first.add('g2');
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(first.events().some((e) => e.msg === 'ipamd stopped; checkpoint flushed')).toBe(true);
    const saved = first.checkpoint() as unknown as {
      version: number;
      allocations: Record<string, unknown>[];
    };
    expect(saved.version).toBe(1);
    expect(saved.allocations).toHaveLength(2);
    expect(saved.allocations).toContainEqual(
      expect.objectContaining({
        containerId: 'g1',
        podNamespace: 'prod',
        podName: 'web-0',
        address: r.result!.address,
      }),
    );
    // An address EC2 took away while ipamd was down stays with its pod (one Describe's silence is no
    // proof the pod is gone), logged, and leaves the pool at the pod's own DEL, never to another pod.
    const goneAddress = String(gone.result!.address);
    s.vpc.state.unassignPrivateIpAddresses({ eniId: node.primaryEniId, addresses: [goneAddress] });
    const second = s.startIpamd(node, {}, first.dir);
    await second.waitServing();
    expect((await second.add('g1')).result!.address).toBe(r.result!.address);
    expect(
      second.events().some((e) => e.msg === 'checkpoint replayed' && e.restored === 2 && e.held === 1),
    ).toBe(true);
    const held = second.events().find((e) => String(e.msg).startsWith('checkpoint entry kept'));
    expect(held).toMatchObject({ containerId: 'g2', address: goneAddress });
    expect((await second.add('g2')).result!.address).toBe(goneAddress);
    expect((await second.del('g2')).result!.address).toBe(goneAddress);
    expect(second.checkpoint().allocations.map((a) => a.containerId)).toEqual(['g1']);
    const others = await Promise.all(['h1', 'h2', 'h3'].map((p) => second.addAsRuntime(p)));
    expect(others.map((o) => o.result?.address)).not.toContain(goneAddress);
  });
});
