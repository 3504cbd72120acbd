/**
 * Pod start and stop as the kubelet sees them: RunPodSandbox and StopPodSandbox latency through
 * containerd's CRI on a kubelet node of the local VPC (test/support/node), with the project's
 * conflist (the one ipamd wrote: aws-cni, then portmap; ipamd as the chart runs it, under runc)
 * against Debian's ptp + host-local + portmap, in the same run, on the same containerd and node:
 * the conflists are switched by file (containerd loads the first one in /etc/cni/net.d), and the two
 * alternate in blocks so both see the same machine load. Prints median/p90 per call and the ratios.
 *
 *   npx tsx bench/cri.ts [--pods 10] [--rounds 4] [--ipamd runc|node-root]
 *
 * Root; `npm run build` first. --ipamd node-root runs ipamd as full root in the node's mount
 * namespace instead of in its container (for code on which ipamd's container cannot serve pods).
 */
import { rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Cluster } from '../test/support/node/cluster.js';
import type { KubeletNode } from '../test/support/node/kubelet-node.js';

const { values: opts } = parseArgs({
  options: {
    pods: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '4' },
    ipamd: { type: 'string', default: 'runc' },
    'instance-type': { type: 'string', default: 'm5.xlarge' },
  },
});
const PODS = Number(opts.pods);
const ROUNDS = Number(opts.rounds);
if (!Number.isInteger(PODS) || PODS < 1 || !Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error('--pods and --rounds take whole numbers >= 1');
if (opts.ipamd !== 'runc' && opts.ipamd !== 'node-root') throw new Error('--ipamd is runc or node-root');

/** Sorts first in /etc/cni/net.d, so containerd takes it over 10-aws.conflist while it exists. */
const BASELINE_FILE = '/etc/cni/net.d/05-baseline.conflist';
const BASELINE = {
  cniVersion: '1.0.0',
  name: 'baseline',
  plugins: [
    { type: 'ptp', ipMasq: false, mtu: 9001, ipam: { type: 'host-local', subnet: '10.99.0.0/16' } },
    { type: 'portmap', capabilities: { portMappings: true }, snat: true },
  ],
};

type Side = 'aws-cni' | 'ptp';
const samples: Record<Side, { run: number[]; stop: number[] }> = {
  'aws-cni': { run: [], stop: [] },
  ptp: { run: [], stop: [] },
};

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function use(node: KubeletNode, side: Side): Promise<void> {
  const file = node.host.path(BASELINE_FILE);
  if (side === 'ptp') writeFileSync(file, JSON.stringify(BASELINE));
  else rmSync(file, { force: true });
  // containerd reloads on the file change; a probe pod shows which network it uses now.
  const want = side === 'ptp' ? /^10\.99\./ : /^10\.0\./;
  for (let i = 0; ; i++) {
    const pod = await node.kubelet.runPod({ name: `probe-${side}-${i}` });
    const ip = (await node.kubelet.status(pod.id)).ip;
    await node.kubelet.stopPod(pod.id);
    await node.kubelet.removePod(pod.id);
    if (want.test(ip)) return;
    if (i > 20) throw new Error(`containerd did not switch to the ${side} conflist`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function block(node: KubeletNode, side: Side, round: number): Promise<void> {
  for (let i = 0; i < PODS; i++) {
    const t0 = performance.now();
    const pod = await node.kubelet.runPod({ name: `bench-${side}-${round}-${i}` });
    const t1 = performance.now();
    await node.kubelet.stopPod(pod.id);
    const t2 = performance.now();
    await node.kubelet.removePod(pod.id);
    samples[side].run.push(t1 - t0);
    samples[side].stop.push(t2 - t1);
  }
}

const cluster = await Cluster.start({
  nodes: 1,
  instanceType: opts['instance-type'],
  extraPlugins: ['ptp', 'host-local'],
  ipamd: opts.ipamd as 'runc' | 'node-root',
  // Pods come and go faster than the default 30 s cooldown frees their addresses.
  values: { env: { IP_COOLDOWN_PERIOD: '0' } },
});
try {
  const node = cluster.nodes[0]!;
  const order: Side[] = ['aws-cni', 'ptp'];
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of round % 2 === 0 ? order : [...order].reverse()) {
      await use(node, side);
      await block(node, side, round);
    }
  }
  const row = (label: string, xs: number[]) =>
    `${label.padEnd(38)} ${String(xs.length).padStart(4)} ${quantile(xs, 0.5).toFixed(1).padStart(9)} ${quantile(xs, 0.9).toFixed(1).padStart(9)}`;
  console.log(
    'CRI pod sandbox latency, ms (containerd 1.6 CRI, overlayfs, ' +
      `${opts['instance-type']}, ipamd ${opts.ipamd === 'runc' ? 'in the chart container (runc)' : 'as node root'}, ` +
      `${ROUNDS} rounds x ${PODS} pods, load ${loadavg()[0]!.toFixed(2)})`,
  );
  console.log(
    `${'call / conflist'.padEnd(38)} ${'n'.padStart(4)} ${'median'.padStart(9)} ${'p90'.padStart(9)}`,
  );
  for (const call of ['run', 'stop'] as const) {
    const name = call === 'run' ? 'RunPodSandbox' : 'StopPodSandbox';
    console.log(row(`${name} aws-cni+portmap`, samples['aws-cni'][call]));
    console.log(row(`${name} ptp+host-local+portmap`, samples.ptp[call]));
  }
  for (const call of ['run', 'stop'] as const) {
    const name = call === 'run' ? 'RunPodSandbox' : 'StopPodSandbox';
    const ratio = (q: number) => quantile(samples['aws-cni'][call], q) / quantile(samples.ptp[call], q);
    console.log(`ratio ${name} aws-cni/ptp: median ${ratio(0.5).toFixed(2)}x, p90 ${ratio(0.9).toFixed(2)}x`);
  }
} finally {
  await cluster.destroy();
}
