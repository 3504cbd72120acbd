/**
 * Runbook: every pod of a full node is torn down, and a new pod arrives while the released
 * addresses cool down (IP_COOLDOWN_PERIOD). The node is at its ENI limit (MAX_ENI=1: the primary
 * ENI's 9 secondary addresses on an m5.large), so no address can come from anywhere else. What the
 * kubelet is told must be true: the addresses are cooling down, with when to retry, not that the
 * pool is growing; and the pod starts as soon as the cooldown ends, through the kubelet's retries.
 * ipamd runs as the rendered chart runs it (runc), the settings are chart values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../support/node/cluster.js';
import type { KubeletNode } from '../../support/node/kubelet-node.js';

const COOLDOWN_S = 8;
let cluster: Cluster;
let node: KubeletNode;

describe('a new pod while every released address cools down (aws-node as the chart runs it)', () => {
  beforeAll(async () => {
    cluster = await Cluster.start({
      nodes: 1,
      values: { env: { MAX_ENI: '1', IP_COOLDOWN_PERIOD: String(COOLDOWN_S) } },
    });
    node = cluster.nodes[0]!;
  }, 180_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 120_000);

  it('is told the addresses are cooling down and when to retry, then starts once they are free', async () => {
    const names = Array.from({ length: 9 }, (_, i) => `full-${i}`);
    const pods = await Promise.all(names.map((name) => node.kubelet.runPodRetrying({ name }, 20_000, 500)));
    // The node is full: a tenth pod has no address at all (max pods is not the limit here: 29).
    const tenth = await node.kubelet.runPod({ name: 'tenth' }).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(tenth).not.toBe('started');

    for (const { pod } of pods) {
      await node.kubelet.stopPod(pod.id);
      await node.kubelet.removePod(pod.id);
    }
    const releasedAt = Date.now();
    expect(node.checkpoint().allocations).toEqual([]);

    const late = await node.kubelet.runPod({ name: 'late' }).then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(late).toMatch(/cooling down/i);
    expect(late).toMatch(/retry in \d+ ?s|free in \d+ ?s/i);
    expect(late).not.toMatch(/growing/i);

    // The kubelet retries the pod; it starts once the first address is out of its cooldown.
    const { pod, errors } = await node.kubelet.runPodRetrying(
      { name: 'late' },
      (COOLDOWN_S + 15) * 1000,
      1_000,
    );
    const startedAfterMs = Date.now() - releasedAt;
    expect(startedAfterMs).toBeLessThan((COOLDOWN_S + 15) * 1000);
    for (const e of errors) expect(e).toMatch(/cooling down/i);
    const st = await node.kubelet.status(pod.id);
    expect(st.ip).toMatch(/^10\.0\.1\.\d+$/);
  });
});
