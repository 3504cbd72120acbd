/**
 * End to end in the local VPC with the real ipamd: two m5.large instances, ipamd in each, pods
 * started through the built aws-cni exactly as a runtime calls it, real packets between them.
 *   node A: SNAT on (the default)          node B: external SNAT on, POD_MTU=1500
 * Each node gets one pod on its primary ENI and, after ipamd hands the rest of the primary ENI's
 * addresses to attachments that exist only in ipamd (they become GC's orphans), one on a secondary ENI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { bundleMissing, type Ipamd, Scenario } from '../ipamd/fixture.js';
import { Netns, PLUGIN, pluginReply, podCniEnv, requireBuilt } from './harness.js';

interface Pod {
  name: string;
  ns: Netns;
  node: Instance;
  ipamd: Ipamd;
  containerId: string;
  address: string;
  result: Record<string, unknown>;
}

let s: Scenario;
let a: Instance;
let b: Instance;
let ipamdA: Ipamd;
let ipamdB: Ipamd;
let c: Instance;
let ipamdC: Ipamd;
const namespaces: Netns[] = [];
const pods: Record<string, Pod> = {};

function conf(ipamd: Ipamd, over: Record<string, unknown> = {}) {
  return { cniVersion: '1.1.0', name: 'aws-cni', type: 'aws-cni', ipamdSocket: ipamd.socketPath, ...over };
}

/** Runs the plugin inside the instance's namespace, as kubelet/containerd would on the node. */
async function cni(
  node: Instance,
  ipamd: Ipamd,
  command: string,
  pod: { name: string; containerId: string; ns?: Netns },
  over: Record<string, unknown> = {},
) {
  const r = await s.vpc.exec(node, process.execPath, [PLUGIN], {
    input: JSON.stringify(conf(ipamd, over)),
    env: podCniEnv(command, pod),
  });
  return pluginReply(r);
}

async function startPod(name: string, node: Instance, ipamd: Ipamd): Promise<Pod> {
  const ns = Netns.create(`${s.vpc.prefix}-${name}`);
  namespaces.push(ns);
  const containerId = `ctr-${name}`;
  // As a runtime does: code 11 ("try again later": the pool is still growing) is retried.
  let r = await cni(node, ipamd, 'ADD', { name, containerId, ns });
  for (const deadline = Date.now() + 20_000; r.code === 11 && Date.now() < deadline; ) {
    await new Promise((done) => setTimeout(done, 200));
    r = await cni(node, ipamd, 'ADD', { name, containerId, ns });
  }
  if (r.code !== 0) throw new Error(`ADD ${name} failed: ${r.raw}`);
  const ips = r.json!.ips as { address: string }[];
  const pod = {
    name,
    ns,
    node,
    ipamd,
    containerId,
    address: ips[0]!.address.split('/')[0]!,
    result: r.json!,
  };
  pods[name] = pod;
  return pod;
}

/** Hands out the rest of the primary ENI's addresses to attachments no runtime knows (orphans). */
async function fillPrimary(ipamd: Ipamd, tag: string): Promise<number> {
  let n = 0;
  for (;;) {
    const r = await ipamd.addAsRuntime(`orphan-${tag}-${n}`);
    if (!r.ok) throw new Error(`filler add failed: ${JSON.stringify(r.error)}`);
    n++;
    if ((r.result as { deviceNumber: number }).deviceNumber !== 0) return n;
  }
}

/**
 * Explains a failed cross-node ping when the cause is the fabric: the VPC router must deliver an
 * address to the ENI that owns it (as EC2 does, without ARP); a pod address is not on the instance's
 * interface, so an ARP from the router for it goes unanswered.
 */
async function routerDelivery(): Promise<string> {
  const neigh = (await s.vpc.exec(s.vpc.routerNetns, 'ip', ['neigh', 'show'])).stdout;
  const podAddrs = new Set(Object.values(pods).map((p) => p.address));
  const unresolved = neigh
    .split('\n')
    .filter((l) => podAddrs.has(l.split(' ')[0]!) && /FAILED|INCOMPLETE/.test(l));
  return unresolved.length === 0
    ? 'router resolves every pod address'
    : `local-VPC router cannot resolve pod addresses (it ARPs for them): ${unresolved.join('; ')}`;
}

function ping(pod: Pod, address: string): number {
  return pod.ns.status('ping', ['-n', '-c1', '-W2', address]);
}

/** Asks the internet host which source address it saw; undefined when the request got nowhere. */
async function whoAmI(pod: Pod): Promise<string | undefined> {
  const url = new URL(s.vpc.inetUrl);
  const request = `exec 3<>/dev/tcp/${url.hostname}/${url.port || 80}; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`;
  const out = await pod.ns.run('timeout', ['3', 'bash', '-c', request]);
  const body = out.stdout.slice(out.stdout.indexOf('{'));
  return out.code === 0 ? (JSON.parse(body) as { sourceAddress: string }).sourceAddress : undefined;
}

describe.skipIf(bundleMissing())('aws-cni in the local VPC with the real ipamd', () => {
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
    [a, b, c] = await Promise.all([
      s.launch('m5.large'),
      s.launch('m5.large', { subnet: 1 }),
      s.launch('m5.large'),
    ]);
    ipamdA = s.startIpamd(a);
    ipamdB = s.startIpamd(b, { AWS_VPC_K8S_CNI_EXTERNALSNAT: 'true', POD_MTU: '1500' });
    ipamdC = s.startIpamd(c, { AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: '198.51.100.0/24' });
    await Promise.all([ipamdA.waitServing(), ipamdB.waitServing(), ipamdC.waitServing()]);
    await startPod('a1', a, ipamdA);
    await startPod('b1', b, ipamdB);
    await startPod('c1', c, ipamdC);
    // The filler's last add already took the secondary ENI's first address; give it back first.
    const fa = await fillPrimary(ipamdA, 'a');
    await ipamdA.del(`orphan-a-${fa - 1}`);
    const fb = await fillPrimary(ipamdB, 'b');
    await ipamdB.del(`orphan-b-${fb - 1}`);
    await startPod('a2', a, ipamdA);
    await startPod('b2', b, ipamdB);
    await s.vpc.settled();
  });

  afterAll(async () => {
    for (const ns of namespaces) ns.delete();
    await s?.close();
  });

  it('places pods on the primary and on a secondary ENI of each node', () => {
    const eniOf = (p: Pod) =>
      s.enisOf(p.node).find((e) => e.privateIps.some((ip) => ip.address === p.address));
    expect(eniOf(pods.a1!)!.attachment!.deviceIndex).toBe(0);
    expect(eniOf(pods.b1!)!.attachment!.deviceIndex).toBe(0);
    expect(eniOf(pods.a2!)!.attachment!.deviceIndex).toBeGreaterThan(0);
    expect(eniOf(pods.b2!)!.attachment!.deviceIndex).toBeGreaterThan(0);
  });

  it('pod to pod on the same node and across nodes, from primary and secondary ENIs', async () => {
    expect(ping(pods.a1!, pods.a2!.address)).toBe(0);
    expect(ping(pods.a2!, pods.a1!.address)).toBe(0);
    const across = [
      ping(pods.a1!, pods.b1!.address),
      ping(pods.a2!, pods.b2!.address),
      ping(pods.b2!, pods.a1!.address),
    ];
    expect(across, await routerDelivery()).toEqual([0, 0, 0]);
  });

  it("pod to the other node's primary address, and each node to its own pods", async () => {
    // The replies come back through the VPC router to the pods' addresses.
    expect([ping(pods.a2!, b.primaryIp), ping(pods.b1!, a.primaryIp)], await routerDelivery()).toEqual([
      0, 0,
    ]);
    for (const p of [pods.a1!, pods.a2!]) expect(await s.vpc.ping(a, p.address, { timeoutS: 2 })).toBe(true);
    for (const p of [pods.b1!, pods.b2!]) expect(await s.vpc.ping(b, p.address, { timeoutS: 2 })).toBe(true);
  });

  it("reaches the internet host only through SNAT to the node's primary address", async () => {
    expect(await whoAmI(pods.a1!)).toBe(a.primaryIp);
    expect(await whoAmI(pods.a2!)).toBe(a.primaryIp);
    // External SNAT: the pod's own address leaves the VPC and the internet host drops it.
    expect(await whoAmI(pods.b1!)).toBeUndefined();
  });

  it('does not SNAT traffic to an excluded CIDR', async () => {
    // Node C excludes the internet range from SNAT: its pod's own address arrives and is dropped,
    // while the node itself (its primary address) is answered.
    const node = await s.vpc.exec(c, 'timeout', [
      '3',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/${new URL(s.vpc.inetUrl).hostname}/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`,
    ]);
    expect(node.stdout).toContain(c.primaryIp);
    expect(await whoAmI(pods.c1!)).toBeUndefined();
    expect(ping(pods.c1!, pods.a1!.address), await routerDelivery()).toBe(0);
  });

  it('the source/destination check proves policy routing for the secondary-ENI pod', async () => {
    const pod = pods.a2!;
    const rules = JSON.parse((await s.vpc.exec(a, 'ip', ['-j', 'rule', 'show'])).stdout) as {
      priority: number;
      src?: string;
      dst?: string;
      dstlen?: number;
      table: string;
    }[];
    const from = rules.filter((r) => r.priority === 1536 && r.src === pod.address);
    expect(from.map((r) => `${r.dst}/${r.dstlen}`)).toEqual(['10.0.0.0/16']);
    const ruleArgs = (r: (typeof from)[number]) => [
      'prio',
      '1536',
      'from',
      pod.address,
      'to',
      `${r.dst}/${r.dstlen}`,
      'table',
      r.table,
    ];
    expect(ping(pod, pods.b1!.address), await routerDelivery()).toBe(0);
    // Without the rule its traffic leaves by the primary ENI, which does not own its address: dropped.
    for (const r of from) await s.vpc.exec(a, 'ip', ['rule', 'del', ...ruleArgs(r)]);
    expect(ping(pod, pods.b1!.address)).not.toBe(0);
    for (const r of from) await s.vpc.exec(a, 'ip', ['rule', 'add', ...ruleArgs(r)]);
    expect(ping(pod, pods.b1!.address), await routerDelivery()).toBe(0);
  });

  it('CHECK passes on a wired pod and detects a missing host route', async () => {
    const pod = pods.a1!;
    const hostVeth = (pod.result.interfaces as { name: string }[])[0]!.name;
    expect((await cni(a, ipamdA, 'CHECK', pod, { prevResult: pod.result })).code).toBe(0);
    await s.vpc.exec(a, 'ip', ['route', 'del', `${pod.address}/32`]);
    const check = await cni(a, ipamdA, 'CHECK', pod, { prevResult: pod.result });
    expect(check.json).toMatchObject({ code: 104 });
    expect(String(check.json!.details)).toContain(`host route ${pod.address}/32`);
    await s.vpc.exec(a, 'ip', ['route', 'add', `${pod.address}/32`, 'dev', hostVeth, 'scope', 'link']);
    expect((await cni(a, ipamdA, 'CHECK', pod, { prevResult: pod.result })).code).toBe(0);
  });

  it('honours the MTU: 9001 by default, POD_MTU on node B', () => {
    const mtu = (p: Pod) => p.ns.json<{ mtu: number }[]>('link', 'show', 'eth0')[0]!.mtu;
    expect(mtu(pods.a1!)).toBe(9001);
    expect(mtu(pods.b1!)).toBe(1500);
    // A full-size unfragmentable packet crosses between jumbo-MTU pods.
    expect(pods.a1!.ns.status('ping', ['-n', '-c1', '-W2', '-M', 'do', '-s', '8972', pods.a2!.address])).toBe(
      0,
    );
    expect(
      pods.b1!.ns.status('ping', ['-n', '-c1', '-W2', '-M', 'do', '-s', '1473', pods.b2!.address]),
    ).not.toBe(0);
  });

  it('GC releases the orphaned attachments and keeps the pods', async () => {
    const valid = [pods.a1!, pods.a2!].map((p) => ({ containerID: p.containerId, ifname: 'eth0' }));
    const before = ipamdA.checkpoint().allocations.length;
    const gc = await cni(
      a,
      ipamdA,
      'GC',
      { name: 'gc', containerId: 'gc' },
      { 'cni.dev/valid-attachments': valid },
    );
    expect(gc.code, gc.raw).toBe(0);
    const left = ipamdA
      .checkpoint()
      .allocations.map((x) => x.containerId)
      .sort();
    expect(left).toEqual([pods.a1!.containerId, pods.a2!.containerId].sort());
    expect(before).toBeGreaterThan(left.length);
    expect(ping(pods.a1!, pods.a2!.address)).toBe(0);
  });

  it('DEL removes every rule, route and link; a repeated DEL succeeds', async () => {
    const pod = pods.a2!;
    const del = await cni(a, ipamdA, 'DEL', pod, { prevResult: pod.result });
    expect(del.code, del.raw).toBe(0);
    expect(pod.ns.linkNames()).toEqual(['lo']);
    const rules = JSON.parse((await s.vpc.exec(a, 'ip', ['-j', 'rule', 'show'])).stdout) as {
      src?: string;
      dst?: string;
    }[];
    expect(rules.filter((r) => r.src === pod.address || r.dst === pod.address)).toEqual([]);
    const routes = JSON.parse(
      (await s.vpc.exec(a, 'ip', ['-j', 'route', 'show', 'table', 'all'])).stdout,
    ) as { dst: string }[];
    expect(routes.filter((r) => r.dst === pod.address)).toEqual([]);
    const hostVeth = (pod.result.interfaces as { name: string }[])[0]!.name;
    expect((await s.vpc.exec(a, 'ip', ['link', 'show', hostVeth])).code).not.toBe(0);
    expect(ipamdA.checkpoint().allocations.map((x) => x.containerId)).not.toContain(pod.containerId);
    expect((await cni(a, ipamdA, 'DEL', pod)).code).toBe(0);
  });
});
