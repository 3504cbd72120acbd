/**
 * Runbook: the aws-node container dies on a node that has pods. The kubelet keeps driving CRI while
 * ipamd is down (pods are stopped and removed meanwhile) and restarts the container; the node must
 * lose nothing (running pods keep their addresses and traffic), leak nothing (torn-down pods'
 * addresses, veths and rules go) and serve new pods once ipamd is back. ipamd runs as the rendered
 * chart runs it (runc, the chart's spec), one node, pods through containerd's CRI.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, eventually } from '../../support/node/cluster.js';
import type { Pod } from '../../support/node/kubelet.js';
import type { KubeletNode } from '../../support/node/kubelet-node.js';

let cluster: Cluster;
let node: KubeletNode;

async function hostVeths(): Promise<string[]> {
  const links = JSON.parse(await node.host.exec('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => n.startsWith('eni'));
}

async function rulesFor(ip: string) {
  const rules = JSON.parse(await node.host.exec('ip', ['-j', 'rule', 'show'])) as {
    src?: string;
    dst?: string;
  }[];
  return rules.filter((r) => r.src === ip || r.dst === ip);
}

async function startPods(names: string[]): Promise<{ pod: Pod; ip: string }[]> {
  return Promise.all(
    names.map(async (name) => {
      const { pod } = await node.kubelet.runPodRetrying({ name }, 20_000, 500);
      return { pod, ip: (await node.kubelet.status(pod.id)).ip };
    }),
  );
}

async function reachable(ip: string): Promise<boolean> {
  return (await node.host.run('ping', ['-c1', '-W2', ip])).code === 0;
}

/** What ipamd holds, by container id. */
function held(): Map<string, string> {
  return new Map(node.checkpoint().allocations.map((a) => [a.containerId, a.address]));
}

/** The kubelet's pod cleanup: Stop then Remove, retried until both succeed (it never gives up). */
async function teardown(pod: Pod, timeoutMs = 30_000): Promise<void> {
  await eventually(
    async () => {
      try {
        await node.kubelet.stopPod(pod.id, 10_000);
        await node.kubelet.removePod(pod.id, 10_000);
        return true;
      } catch {
        return false;
      }
    },
    timeoutMs,
    `Stop/RemovePodSandbox of ${pod.name}`,
  );
}

describe('ipamd killed and restarted on a node with pods (aws-node as the chart runs it)', () => {
  beforeAll(async () => {
    cluster = await Cluster.start({ nodes: 1 });
    node = cluster.nodes[0]!;
  }, 180_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 120_000);

  afterEach(async () => {
    if (!node.awsNode.ipamd.running) {
      await node.awsNode.restart();
      await node.awsNode.waitReady().catch(() => undefined);
    }
    await node.kubelet.removeAll();
  });

  it('with ipamd down, RemovePodSandbox of a stopped pod (DEL without netns or prevResult) succeeds', async () => {
    const [a] = await startPods(['stopped-before']);
    await node.kubelet.stopPod(a!.pod.id);
    expect(held().has(a!.pod.id)).toBe(false);

    await node.awsNode.ipamd.kill('SIGKILL');
    expect(await node.awsNode.ipamd.wait()).toBe(137);
    // The kubelet's cleanup of the stopped pod while ipamd is away: containerd sends DEL again, now
    // without a namespace or a cached result; there is nothing left to do, so it must succeed.
    await node.kubelet.stopPod(a!.pod.id);
    await node.kubelet.removePod(a!.pod.id);
    expect(await node.kubelet.list()).toEqual([]);

    await node.awsNode.restart();
    await node.awsNode.waitReady();
    expect(held().has(a!.pod.id)).toBe(false);
  });

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    it(`${signal} of ipamd with pods running, some torn down meanwhile: nothing lost, nothing leaked, serves again`, async () => {
      const pods = await startPods(['keep-1', 'keep-2', 'gone-1', 'gone-2']);
      const [keep1, keep2, gone1, gone2] = pods as [
        (typeof pods)[0],
        (typeof pods)[0],
        (typeof pods)[0],
        (typeof pods)[0],
      ];
      const starts = node.awsNode.ipamd.starts;

      await node.awsNode.ipamd.kill(signal);
      await node.awsNode.ipamd.wait();
      // Pods keep their network while ipamd is away; the kubelet tears two of them down meanwhile
      // (each call may fail until ipamd is back: the kubelet retries, so do we).
      for (const p of [keep1, keep2]) expect(await reachable(p.ip)).toBe(true);
      const teardowns = [gone1, gone2].map((p) => teardown(p.pod, 60_000));
      await new Promise((r) => setTimeout(r, 1_000));

      // The kubelet restarts the container.
      await node.awsNode.restart();
      await node.awsNode.waitReady();
      await Promise.all(teardowns);
      expect(node.awsNode.ipamd.starts).toBe(starts + 1);

      // Nothing lost: the running pods keep their addresses and traffic.
      expect(held().get(keep1.pod.id)).toBe(keep1.ip);
      expect(held().get(keep2.pod.id)).toBe(keep2.ip);
      for (const p of [keep1, keep2]) expect(await reachable(p.ip)).toBe(true);
      // Nothing leaked: the torn-down pods' addresses, veths and rules are gone.
      expect([...held().keys()].sort()).toEqual([keep1.pod.id, keep2.pod.id].sort());
      expect(await hostVeths()).toHaveLength(2);
      for (const p of [gone1, gone2]) expect(await rulesFor(p.ip)).toEqual([]);

      // Serves: a new pod starts and is reachable.
      const [fresh] = await startPods(['after-restart']);
      expect(await reachable(fresh!.ip)).toBe(true);
      expect(new Set([keep1.ip, keep2.ip, fresh!.ip]).size).toBe(3);
    });
  }
});
