/**
 * The built plugin, exec'd as a runtime does, inside namespaces this test creates: a stand-in node
 * namespace and pod namespaces. Addresses come from the ipamd TEST DOUBLE (fake-ipamd.ts); the
 * end-to-end suite with the real ipamd in the local VPC is e2e.test.ts.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeIpamd } from './fake-ipamd.js';
import { type CniCall, cni, Netns, requireBuilt, runId } from './harness.js';

const id = runId();
const socketPath = `/tmp/vpccni-${id}-ipamd.sock`;
let node: Netns;
const pods: Netns[] = [];
let fake: FakeIpamd;

const conf = (over: Record<string, unknown> = {}) => ({
  cniVersion: '1.1.0',
  name: 'aws-cni',
  type: 'aws-cni',
  ipamdSocket: socketPath,
  ...over,
});

function newPod(): Netns {
  const p = Netns.create(`vpccni-${id}-p${pods.length}`);
  pods.push(p);
  return p;
}

/** One pod attachment's calls. */
function attachment(pod: Netns, containerId: string, podName: string) {
  const base: Omit<CniCall, 'command'> = {
    containerId,
    netns: pod.path,
    ifName: 'eth0',
    args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${podName};K8S_POD_INFRA_CONTAINER_ID=${containerId}`,
    node,
    conf: conf(),
  };
  return {
    add: (over: Partial<CniCall> = {}) => cni({ ...base, command: 'ADD', ...over }),
    del: (over: Partial<CniCall> = {}) => cni({ ...base, command: 'DEL', ...over }),
    check: (prevResult: unknown, over: Partial<CniCall> = {}) =>
      cni({ ...base, command: 'CHECK', conf: conf({ prevResult }), ...over }),
  };
}

/** Rules this plugin makes (priorities 512 and 1536) in the node namespace. */
function podRules() {
  return node.rules().filter((r) => r.priority === 512 || r.priority === 1536);
}

/** Asserts a call succeeded, showing its answer when it did not. */
function ok(out: { exitCode: number; stdout: string; stderr: string }) {
  expect(out.exitCode, out.stdout + out.stderr).toBe(0);
}

function expectPodEmpty(pod: Netns) {
  expect(pod.linkNames()).toEqual(['lo']);
}

function expectNodeClean() {
  expect(node.linkNames()).toEqual(['lo']);
  expect(podRules()).toEqual([]);
  expect(node.json('route', 'show', 'table', 'main')).toEqual([]);
}

beforeAll(async () => {
  requireBuilt();
  node = Netns.create(`vpccni-${id}-node`);
  // The node's own address, the source of its pings to pods.
  node.ip('addr', 'add', '192.168.250.1/32', 'dev', 'lo');
  fake = await new FakeIpamd({
    socketPath,
    addresses: [
      { address: '10.0.1.10', deviceNumber: 0, routeTable: 254 },
      { address: '10.0.2.20', deviceNumber: 1, routeTable: 2 },
      { address: '10.0.2.21', deviceNumber: 1, routeTable: 2 },
      { address: '10.0.3.30', deviceNumber: 2, routeTable: 3 },
    ],
    vpcCidrs: ['10.0.0.0/16', '100.64.0.0/16'],
  }).start();
});

afterAll(async () => {
  await fake?.stop();
  for (const p of pods) p.delete();
  node?.delete();
});

describe('ADD, CHECK and DEL on the primary ENI', () => {
  it('wires the pod, the node reaches it, CHECK notices a missing route, DEL removes everything', async () => {
    const pod = newPod();
    const a = attachment(pod, 'c-primary', 'nginx');
    fake.addOverrides = { mtu: 1400 };
    const add = await a.add();
    fake.addOverrides = {};
    expect(add.exitCode, add.stdout).toBe(0);
    const result = add.json as {
      interfaces: { name: string; mac: string; mtu?: number; sandbox?: string }[];
      ips: { address: string; interface: number }[];
    };
    // sha1("default.nginx") = c440f455693...
    expect(result.interfaces[0]).toMatchObject({ name: 'enic440f455693' });
    expect(result.interfaces[0]!.sandbox).toBeUndefined();
    expect(result.interfaces[0]!.mac).toMatch(/^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/);
    expect(result.interfaces[1]).toMatchObject({ name: 'eth0', mtu: 1400, sandbox: pod.path });
    expect(result.ips).toEqual([{ address: '10.0.1.10/32', interface: 1 }]);

    // Pod side.
    const [eth0] = pod.json<{ mtu: number; addr_info: { local: string; prefixlen: number }[] }[]>(
      'addr',
      'show',
      'eth0',
    );
    expect(eth0!.mtu).toBe(1400);
    expect(eth0!.addr_info.filter((x) => x.prefixlen === 32).map((x) => x.local)).toEqual(['10.0.1.10']);
    const routes = pod.json<{ dst: string; gateway?: string; scope?: string }[]>('route', 'show');
    expect(routes).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '169.254.1.1' }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '169.254.1.1', scope: 'link' }));
    const neigh = pod.json<{ dst: string; lladdr: string; state: string[] }[]>(
      'neigh',
      'show',
      'dev',
      'eth0',
    );
    expect(neigh).toEqual([
      expect.objectContaining({ dst: '169.254.1.1', lladdr: result.interfaces[0]!.mac }),
    ]);
    expect(neigh[0]!.state).toContain('PERMANENT');

    // Node side: /32 route to the veth, "to" rule at 512, no "from" rule on the primary ENI.
    expect(node.json('route', 'show', 'table', 'main')).toEqual([
      expect.objectContaining({ dst: '10.0.1.10', dev: 'enic440f455693', scope: 'link' }),
    ]);
    expect(podRules()).toEqual([{ priority: 512, src: 'all', dst: '10.0.1.10', table: 'main' }]);
    expect(node.status('ping', ['-c1', '-W2', '10.0.1.10'])).toBe(0);

    ok(await a.check(add.json));
    pod.ip('route', 'del', 'default');
    const check = await a.check(add.json);
    expect(check.exitCode).toBe(1);
    expect(check.json).toMatchObject({ code: 104 });
    expect(String(check.json!.details)).toContain('default route');

    const del = await a.del({ conf: conf({ prevResult: add.json }) });
    expect(del.exitCode, del.stdout).toBe(0);
    expect(fake.requests.at(-1)).toMatchObject({ op: 'del', containerId: 'c-primary', ifName: 'eth0' });
    expectPodEmpty(pod);
    expectNodeClean();

    // Idempotent: again, and again once the namespace is gone.
    ok(await a.del());
    pod.delete();
    ok(await a.del());
    ok(await a.del({ netns: '' }));
  });
});

describe('secondary ENI policy routing', () => {
  it('with SNAT on, traffic from the pod uses the ENI table only towards the VPC CIDRs', async () => {
    const pod = newPod();
    const a = attachment(pod, 'c-sec', 'web-1');
    // Take the primary address first so this attachment lands on the secondary ENI.
    const filler = attachment(newPod(), 'c-filler', 'filler');
    ok(await filler.add());
    const add = await a.add();
    expect(add.exitCode, add.stdout).toBe(0);
    expect(podRules()).toEqual(
      expect.arrayContaining([
        { priority: 512, src: 'all', dst: '10.0.2.20', table: 'main' },
        { priority: 1536, src: '10.0.2.20', dst: '10.0.0.0', dstlen: 16, table: '2' },
        { priority: 1536, src: '10.0.2.20', dst: '100.64.0.0', dstlen: 16, table: '2' },
      ]),
    );
    ok(await a.del());
    expect(podRules().filter((r) => r.src === '10.0.2.20' || r.dst === '10.0.2.20')).toEqual([]);
    ok(await filler.del());
    expectNodeClean();
  });

  it('with external SNAT, all traffic from the pod uses the ENI table', async () => {
    const filler = attachment(newPod(), 'c-filler2', 'filler2');
    ok(await filler.add());
    const a = attachment(newPod(), 'c-ext', 'web-2');
    fake.addOverrides = { snat: { enabled: false, randomize: 'none', excludeCidrs: [] } };
    const add = await a.add();
    fake.addOverrides = {};
    expect(add.exitCode, add.stdout).toBe(0);
    expect(podRules().filter((r) => r.priority === 1536)).toEqual([
      { priority: 1536, src: '10.0.2.20', table: '2' },
    ]);
    ok(await a.del());
    ok(await filler.del());
    expectNodeClean();
  });
});

describe('failures leave nothing behind', () => {
  it('an ADD that fails half-way undoes its steps and releases the address', async () => {
    const filler = attachment(newPod(), 'c-filler3', 'filler3');
    ok(await filler.add());
    const pod = newPod();
    const a = attachment(pod, 'c-half', 'half');
    // The last step: the first "from" rule, after veth, addresses, routes, neighbour and "to" rule.
    const add = await a.add({ env: { VPCCNI_CNI_FAILPOINT: 'add rule from' } });
    expect(add.exitCode).toBe(1);
    expect(add.json).toMatchObject({ code: 102 });
    expect(String(add.json!.msg)).toContain('add rule from 10.0.2.20/32');
    expectPodEmpty(pod);
    expect(fake.requests.at(-1)).toMatchObject({ op: 'del', containerId: 'c-half' });
    expect([...fake.assigned.values()].map((x) => x.address)).toEqual(['10.0.1.10']);
    ok(await filler.del());
    expectNodeClean();
  });

  it('ADD on an interface name that exists errors without touching the existing attachment', async () => {
    const pod = newPod();
    const a = attachment(pod, 'c-twice', 'twice');
    const first = await a.add();
    expect(first.exitCode).toBe(0);
    const requests = fake.requests.length;
    const second = await a.add();
    expect(second.json).toMatchObject({ code: 103 });
    expect(String(second.json!.msg)).toContain('eth0 already exists');
    expect(fake.requests.length).toBe(requests);
    expect(node.status('ping', ['-c1', '-W2', '10.0.1.10'])).toBe(0);
    ok(await a.del());
    expectNodeClean();
  });

  it.each([
    ['malformed stdin', 6, { conf: '{"cniVersion": "1.0.0", ' }],
    ['missing CNI_NETNS', 4, { env: { CNI_NETNS: undefined } }],
    ['missing CNI_PATH', 4, { env: { CNI_PATH: '' } }],
    ['unknown cniVersion', 1, { conf: conf({ cniVersion: '0.2.0' }) }],
    ['a netns that does not exist', 4, { netns: '/var/run/netns/vpccni-absent' }],
    ['ipamd down', 11, { conf: conf({ ipamdSocket: `/tmp/vpccni-${id}-absent.sock` }) }],
  ] as [string, number, Partial<CniCall>][])('%s: code %i and nothing created', async (_name, code, over) => {
    const pod = newPod();
    const before = fake.requests.length;
    const out = await attachment(pod, 'c-err', 'err').add(over);
    expect(out.exitCode).toBe(1);
    expect(out.json).toMatchObject({ code });
    expect(typeof out.json!.msg).toBe('string');
    if (code === 11) expect(String(out.json!.msg)).toContain('ipamd is not running on this node');
    if (code !== 11) expect(fake.requests.length).toBe(before);
    expectPodEmpty(pod);
    expectNodeClean();
  });

  it('an empty pool is "try again later" (11)', async () => {
    fake.failure = { code: 'pool_empty', message: 'attaching eni-3' };
    try {
      const pod = newPod();
      const out = await attachment(pod, 'c-pool', 'pool').add();
      expect(out.json).toMatchObject({ code: 11 });
      expect(String(out.json!.details)).toContain('attaching eni-3');
      expectPodEmpty(pod);
    } finally {
      fake.failure = undefined;
    }
  });
});

describe('DEL when ipamd is unreachable', () => {
  it('tears down what the namespace proves and succeeds, with or without prevResult, leaving the release for ipamd', async () => {
    const pod = newPod();
    const a = attachment(pod, 'c-down', 'down');
    const add = await a.add();
    expect(add.exitCode).toBe(0);
    // ipamd's socket directory exists but nobody serves it: where the pending-del notes go.
    const downDir = `/tmp/vpccni-${id}-down`;
    mkdirSync(downDir, { recursive: true });
    const down = `${downDir}/ipamd.sock`;
    const withPrev = await a.del({ conf: conf({ ipamdSocket: down, prevResult: add.json }) });
    expect(withPrev.exitCode, withPrev.stdout).toBe(0);
    expectPodEmpty(pod);
    expectNodeClean();

    const b = attachment(newPod(), 'c-down2', 'down2');
    ok(await b.add());
    // A runtime that lost the result (containerd after its first teardown) still gets success: the
    // kubelet's cleanup must not wait for ipamd. The pod's own interface proves what was its.
    const noPrev = await b.del({ conf: conf({ ipamdSocket: down }) });
    expect(noPrev.exitCode, noPrev.stdout).toBe(0);
    expectNodeClean();
    // Each DEL left a note for ipamd (next to the socket it would have used) to release the address.
    const notes = readdirSync(`${downDir}/pending-del`);
    expect(notes).toHaveLength(2);
    const texts = notes.map((n) => JSON.parse(readFileSync(`${downDir}/pending-del/${n}`, 'utf8')));
    expect(texts.map((t) => t.containerId).sort()).toEqual(['c-down', 'c-down2']);
    expect(statSync(`${downDir}/pending-del/${notes[0]}`).mode & 0o777).toBe(0o600);
    rmSync(downDir, { recursive: true });
    fake.assigned.clear();
  });
});

describe('GC, STATUS, VERSION', () => {
  it('GC releases attachments not in the valid list and removes their host routing', async () => {
    const keep = attachment(newPod(), 'c-keep', 'keep');
    const gone = newPod();
    const orphan = attachment(gone, 'c-orphan', 'orphan');
    ok(await keep.add());
    ok(await orphan.add());
    const gc = await cni({
      command: 'GC',
      node,
      conf: conf({ 'cni.dev/valid-attachments': [{ containerID: 'c-keep', ifname: 'eth0' }] }),
    });
    expect(gc.exitCode, gc.stdout).toBe(0);
    expect([...fake.assigned.keys()]).toEqual(['aws-cni/c-keep/eth0']);
    expect(podRules()).toEqual([{ priority: 512, src: 'all', dst: '10.0.1.10', table: 'main' }]);
    expect(node.linkNames()).toHaveLength(2);
    expectPodEmpty(gone);
    expect(node.status('ping', ['-c1', '-W2', '10.0.1.10'])).toBe(0);
    const noList = await cni({ command: 'GC', node, conf: conf() });
    expect(noList.json).toMatchObject({ code: 7 });
    ok(await keep.del());
    expectNodeClean();
  });

  it('STATUS succeeds while ipamd answers and is 50 when it does not', async () => {
    ok(await cni({ command: 'STATUS', node, conf: conf() }));
    const down = await cni({
      command: 'STATUS',
      node,
      conf: conf({ ipamdSocket: `/tmp/vpccni-${id}-x.sock` }),
    });
    expect(down.json).toMatchObject({ code: 50 });
  });

  it('VERSION lists the supported versions', async () => {
    const out = await cni({ command: 'VERSION', node, conf: { cniVersion: '1.0.0' } });
    expect(out.json).toEqual({
      cniVersion: '1.0.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });
});

describe('result versions and chaining', () => {
  it('answers 0.4.0 with versioned ips and appends to a previous result', async () => {
    const pod = newPod();
    const a = attachment(pod, 'c-040', 'old');
    const prevResult = {
      cniVersion: '0.4.0',
      interfaces: [{ name: 'net0', sandbox: pod.path }],
      ips: [{ version: '4', address: '192.168.7.2/24', interface: 0 }],
      dns: { nameservers: ['10.0.0.2'] },
    };
    const add = await a.add({ conf: conf({ cniVersion: '0.4.0', prevResult }) });
    expect(add.exitCode, add.stdout).toBe(0);
    expect(add.json).toMatchObject({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'net0' }, { name: 'eni0a60ad12f1d' }, { name: 'eth0', sandbox: pod.path }],
      ips: [
        { version: '4', address: '192.168.7.2/24', interface: 0 },
        { version: '4', address: '10.0.1.10/32', interface: 2 },
      ],
      dns: { nameservers: ['10.0.0.2'] },
    });
    expect((add.json!.interfaces as Record<string, unknown>[])[2]!.mtu).toBeUndefined();
    ok(await a.del({ conf: conf({ cniVersion: '0.4.0', prevResult: add.json }) }));
    expectNodeClean();
  });
});
