import { describe, expect, it } from 'vitest';
import { planChecks } from '../../../infra/local-vpc/demo/checks.js';
import type { Node } from '../../../infra/local-vpc/demo/cluster.js';
import {
  addressOf,
  latencySummary,
  mapLimit,
  newPod,
  type Pod,
  podNetnsName,
} from '../../../infra/local-vpc/demo/pods.js';
import { Progress } from '../../../infra/local-vpc/demo/progress.js';

const node = (label: string) => ({ label }) as Node;

function pods(spec: Array<[string, string, number]>): { pods: Pod[]; device: Map<Pod, number> } {
  const device = new Map<Pod, number>();
  const nodes = new Map<string, Node>();
  const list = spec.map(([n, address, dev], i) => {
    const nd = nodes.get(n) ?? node(n);
    nodes.set(n, nd);
    const p = { ...newPod('vpccni-t', i + 1, nd), address };
    device.set(p, dev);
    return p;
  });
  return { pods: list, device };
}

describe('planChecks', () => {
  it('gives every pod a same-node peer on another ENI, a cross-node peer and the internet', () => {
    const { pods: ps, device } = pods([
      ['node-1', '10.0.1.5', 0],
      ['node-2', '10.0.2.5', 0],
      ['node-1', '10.0.1.6', 0],
      ['node-2', '10.0.2.15', 1],
      ['node-1', '10.0.1.15', 1],
    ]);
    const plan = planChecks(ps, (p) => device.get(p), '198.51.100.10');
    const of = (i: number) => plan.filter((c) => c.pod === ps[i]).map((c) => `${c.kind}:${c.target}`);
    expect(of(0)).toEqual(['same-node:10.0.1.15', 'cross-node:10.0.2.5', 'internet:198.51.100.10']);
    // A secondary-ENI pod pings a primary-ENI pod on its node.
    expect(of(4)[0]).toBe('same-node:10.0.1.5');
    expect(of(3)).toEqual(['same-node:10.0.2.5', 'cross-node:10.0.1.6', 'internet:198.51.100.10']);
    expect(plan).toHaveLength(15);
  });

  it('skips what cannot exist: no same-node peer for a lone pod, no cross-node check on one node', () => {
    const { pods: ps, device } = pods([['node-1', '10.0.1.5', 0]]);
    expect(planChecks(ps, (p) => device.get(p), '198.51.100.10').map((c) => c.kind)).toEqual(['internet']);
  });
});

describe('pods', () => {
  it('names namespaces under the run prefix and gives each pod a runtime-style container id', () => {
    const p = newPod('vpccni-abc', 7, node('node-1'));
    expect(p.netns).toBe('vpccni-abc-pod-07');
    expect(podNetnsName('vpccni-abc', 12)).toBe('vpccni-abc-pod-12');
    expect(p.netnsPath).toBe('/var/run/netns/vpccni-abc-pod-07');
    expect(p.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(p.podName).toBe('demo-07');
  });

  it('reads the address out of a CNI result and rejects one without', () => {
    expect(addressOf({ ips: [{ address: '10.0.1.5/32', interface: 1 }] })).toBe('10.0.1.5');
    expect(() => addressOf({ ips: [] })).toThrow(/no IPv4 address/);
  });

  it('mapLimit keeps order and never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, n * 3));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30]);
    expect(peak).toBe(2);
  });
});

describe('Progress', () => {
  function sink(tty: boolean) {
    const chunks: string[] = [];
    const out = {
      write: (s: string) => chunks.push(s) !== 0,
      isTTY: tty,
    } as unknown as NodeJS.WritableStream;
    return { chunks, out };
  }

  it('rewrites one line on a terminal and ends it before a permanent line', () => {
    const { chunks, out } = sink(true);
    const p = new Progress(out, true);
    p.update('a');
    p.update('a');
    p.update('b');
    p.log('done');
    expect(chunks).toHaveLength(4);
    expect(chunks[0]!.startsWith('\r\x1b[K')).toBe(true);
    expect(chunks[0]).toMatch(/\[\s*\d+\.\ds\] a$/);
    expect(chunks[2]).toBe('\r\x1b[K');
    expect(chunks[3]).toBe('done\n');
  });

  it('writes whole lines, at most one per interval, into a log', () => {
    const { chunks, out } = sink(false);
    const p = new Progress(out, false, 60_000);
    p.update('a');
    p.update('b');
    expect(chunks).toHaveLength(1);
    expect(chunks[0]).toMatch(/\] a\n$/);
  });
});

describe('latencySummary', () => {
  it('gives median, p90 and max', () => {
    expect(latencySummary([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])).toBe(
      'median 50 ms, p90 90 ms, max 100 ms',
    );
    expect(latencySummary([7])).toBe('median 7 ms, p90 7 ms, max 7 ms');
    expect(latencySummary([])).toBe('no samples');
  });
});
