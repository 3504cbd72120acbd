/**
 * What a CNI call may touch, tried as a busy node and an attacker on it would: in an m5.large of the
 * local VPC with the real ipamd, through the shim (ipamd runs the call) and the Node plugin.
 * - A late DEL (a runtime retrying the DEL of a sandbox long gone, with its cached prevResult) and a
 *   DEL of a container ipamd never knew, whose prevResult names a live pod's address, leave that pod
 *   alone; so does the old sandbox's DEL when a new sandbox of the same pod name has the same veth
 *   name. With ipamd away nothing is removed on prevResult's word alone.
 * - CNI_NETNS naming the node's own namespace, or a FIFO, is refused with code 4 before anything
 *   changes, and ipamd keeps serving meanwhile.
 * - Many calls at once, and two attachments in one sandbox namespace at once, all succeed (netlink
 *   requests in ipamd never interleave: no EBUSY, no handle closed under another call).
 */
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { bundleMissing, type Ipamd, Scenario } from '../ipamd/fixture.js';
import { requireBuilt } from './harness.js';
import { NodeCalls, type Pod } from './node-calls.js';

let s: Scenario;
let node: Instance;
let ipamd: Ipamd;
let n: NodeCalls;
let scratch: string;

type Result = Record<string, unknown> & {
  interfaces: { name: string; mac?: string; sandbox?: string }[];
  ips: { address: string; interface: number }[];
};

/** prevResult as a stale cache would hold it after the address went to someone else. */
function claiming(result: Record<string, unknown>, address: string): Result {
  const r = structuredClone(result) as Result;
  r.ips = r.ips.map((ip) => ({ ...ip, address: `${address}/32` }));
  return r;
}

async function expectHealthy(pod: Pod, wired: { result: Record<string, unknown>; address: string }) {
  const check = await n.call('CHECK', pod, JSON.stringify(n.conf({ prevResult: wired.result })));
  expect(check.code, `CHECK of ${pod.name}: ${check.raw}`).toBe(0);
  expect(pod.ns!.status('ping', ['-n', '-c1', '-W2', node.primaryIp]), `${pod.name} reaches its node`).toBe(
    0,
  );
  expect(ipamd.checkpoint().allocations).toContainEqual(
    expect.objectContaining({ containerId: pod.containerId, address: wired.address }),
  );
}

describe.skipIf(bundleMissing())('what a CNI call may touch', () => {
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
    node = await s.launch('m5.large');
    ipamd = s.startIpamd(node, { IP_COOLDOWN_PERIOD: '0' });
    await ipamd.waitServing();
    n = new NodeCalls(s, node, ipamd);
    scratch = `/tmp/vpccni-${s.vpc.prefix}-own`;
    mkdirSync(scratch, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    n?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await s?.close();
  });

  for (const exe of ['shim', 'node'] as const) {
    it(`${exe}: a late DEL whose prevResult names a live pod's address leaves that pod alone`, async () => {
      const live = n.newPod(`live-${exe}`);
      const wired = await n.add(live);
      const gone = { name: `old-${exe}`, containerId: `ctr-old-${exe}` }; // its namespace is long gone
      const late = claiming(wired.result, wired.address);
      const del = await n.call('DEL', gone, JSON.stringify(n.conf({ prevResult: late })), { exe });
      expect(del.code, del.raw).toBe(0);
      await expectHealthy(live, wired);
      // ipamd away: prevResult alone proves nothing either.
      const away = n.conf({ prevResult: late, ipamdSocket: `${scratch}/absent/ipamd.sock` });
      const del2 = await n.call('DEL', gone, JSON.stringify(away), { exe: 'node' });
      expect(del2.code, del2.raw).toBe(0);
      await expectHealthy(live, wired);
      expect((await n.call('DEL', live, JSON.stringify(n.conf({ prevResult: wired.result })))).code).toBe(0);
    });
  }

  it("the old sandbox's DEL does not delete the new sandbox's veth of the same pod name", async () => {
    // A StatefulSet pod recreated: same namespace/name, so the same host veth name.
    const first = n.newPod('web-0', 'ctr-web-0-a');
    const a = await n.add(first);
    first.ns!.delete(); // the sandbox died without a DEL
    const second = n.newPod('web-0', 'ctr-web-0-b');
    const b = await n.add(second);
    const hostVeth = (b.result.interfaces as { name: string }[])[0]!.name;
    expect((a.result.interfaces as { name: string }[])[0]!.name).toBe(hostVeth);
    // The runtime finally cleans up the old sandbox: its cached prevResult names the same veth.
    const del = await n.call('DEL', first, JSON.stringify(n.conf({ prevResult: a.result })));
    expect(del.code, del.raw).toBe(0);
    await expectHealthy(second, b);
    expect(await n.hostRoute(b.address)).toContain(`dev ${hostVeth}`);
    expect((await n.call('DEL', second, JSON.stringify(n.conf({ prevResult: b.result })))).code).toBe(0);
  });

  for (const exe of ['shim', 'node'] as const) {
    it(`${exe}: CNI_NETNS naming the node's own namespace is refused with code 4 and nothing changes`, async () => {
      const route = async () => (await s.vpc.exec(node, 'ip', ['route', 'show', 'default'])).stdout;
      const before = { route: await route(), allocations: ipamd.checkpoint().allocations.length };
      // A symlink a caller planted to the node's namespace (the plugin runs in it: /proc/self).
      const link = `${scratch}/nodens-${exe}`;
      rmSync(link, { force: true });
      symlinkSync('/proc/self/ns/net', link);
      const victim = { name: `victim-${exe}`, containerId: `ctr-victim-${exe}` };
      const addr = await n.call('ADD', victim, JSON.stringify(n.conf()), { exe, env: { CNI_NETNS: link } });
      expect(addr.code).toBe(1);
      expect(addr.json).toMatchObject({
        code: 4,
        details: expect.stringContaining("it is the node's own network namespace"),
      });
      expect(await route()).toBe(before.route);
      expect(ipamd.checkpoint().allocations).toHaveLength(before.allocations);
      // DEL there with CNI_IFNAME naming one of the node's bridges: refused, the bridge stays.
      await s.vpc.exec(node, 'ip', ['link', 'add', `brv-${exe}`, 'type', 'bridge']);
      const del = await n.call('DEL', victim, JSON.stringify(n.conf()), {
        exe,
        env: { CNI_NETNS: link, CNI_IFNAME: `brv-${exe}` },
      });
      expect(del.json).toMatchObject({ code: 4 });
      expect((await s.vpc.exec(node, 'ip', ['link', 'show', `brv-${exe}`])).code).toBe(0);
      await s.vpc.exec(node, 'ip', ['link', 'del', `brv-${exe}`]);
    });
  }

  it('a FIFO as CNI_NETNS is refused at once and ipamd keeps serving', async () => {
    const fifo = `${scratch}/fifo`;
    rmSync(fifo, { force: true });
    await s.vpc.exec(node, 'mkfifo', [fifo]);
    const pod = { name: 'fifo', containerId: 'ctr-fifo' };
    const started = Date.now();
    const [viaShim, viaNode, health] = await Promise.all([
      n.call('ADD', pod, JSON.stringify(n.conf()), { env: { CNI_NETNS: fifo } }),
      n.call('ADD', pod, JSON.stringify(n.conf()), { exe: 'node', env: { CNI_NETNS: fifo } }),
      ipamd.request({ op: 'health' }),
    ]);
    expect(viaShim.json).toMatchObject({
      code: 4,
      details: expect.stringContaining('not a network namespace'),
    });
    expect(viaNode.json).toEqual(viaShim.json);
    expect(health.ok).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000); // nothing waited for a writer on the FIFO
  });

  it('16 pods added and deleted at once all succeed, and leave nothing behind', async () => {
    const pods = Array.from({ length: 16 }, (_, i) => n.newPod(`burst-${i}`));
    const added = await Promise.all(pods.map((p) => n.add(p)));
    expect(new Set(added.map((a) => a.address)).size).toBe(16);
    const dels = await Promise.all(
      pods.map((p, i) => n.call('DEL', p, JSON.stringify(n.conf({ prevResult: added[i]!.result })))),
    );
    for (const d of dels) expect(d.code, d.raw).toBe(0);
    for (const a of added) {
      expect(await n.hostRoute(a.address)).toBe('');
      expect(await n.hostRules(a.address)).toEqual([]);
    }
    expect(ipamd.checkpoint().allocations.filter((a) => a.containerId.startsWith('ctr-burst'))).toEqual([]);
  });

  it('two attachments in one sandbox namespace, handled at once, do not break each other', async () => {
    const sandbox = n.newPod('multi', 'ctr-multi-a');
    const other = { ...sandbox, containerId: 'ctr-multi-b' };
    const env = (ifName: string) => ({ CNI_IFNAME: ifName });
    for (let round = 0; round < 3; round++) {
      const [a, b] = await Promise.all([
        n.add(sandbox, { env: env('eth0') }),
        n.add(other, { env: env('eth1') }),
      ]);
      const [da, db] = await Promise.all([
        n.call('DEL', sandbox, JSON.stringify(n.conf({ prevResult: a.result })), { env: env('eth0') }),
        n.call('DEL', other, JSON.stringify(n.conf({ prevResult: b.result })), { env: env('eth1') }),
      ]);
      expect(da.code, da.raw).toBe(0);
      expect(db.code, db.raw).toBe(0);
      expect(sandbox.ns!.linkNames()).toEqual(['lo']);
    }
  });
});
