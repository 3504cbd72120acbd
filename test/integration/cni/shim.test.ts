/**
 * The native shim (dist/aws-cni) exec'd as a runtime does, inside an m5.large of the local VPC with
 * the real ipamd: ADD/CHECK/DEL run inside ipamd (its log shows "cni call served"), two pods at once
 * get distinct addresses, config errors carry the Node plugin's codes, and with ipamd gone the shim
 * execs aws-cni.mjs (DEL from prevResult succeeds, ADD says try again later).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { bundleMissing, eventually, type Ipamd, Scenario } from '../ipamd/fixture.js';
import { requireBuilt } from './harness.js';
import { NodeCalls, type Pod, SHIM } from './node-calls.js';

let s: Scenario;
let node: Instance;
let ipamd: Ipamd;
let calls: NodeCalls;

const conf = (over: Record<string, unknown> = {}) => calls.conf(over);
const call = (...a: Parameters<NodeCalls['call']>) => calls.call(...a);
const newPod = (name: string) => calls.newPod(name);
const add = (pod: Pod) => calls.add(pod);
const hostRoute = (address: string) => calls.hostRoute(address);

const served = () => ipamd.events().filter((e) => e.msg === 'cni call served').length;
/** ipamd's log reaches the test through a pipe: wait for `n` served calls to show up. */
const servedReaches = (n: number) => eventually(() => served() >= n, 5_000, `${n} cni calls served`);

describe.skipIf(bundleMissing() || !existsSync(SHIM))('the native aws-cni shim with the real ipamd', () => {
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
    node = await s.launch('m5.large');
    ipamd = s.startIpamd(node, { IP_COOLDOWN_PERIOD: '0' });
    await ipamd.waitServing();
    calls = new NodeCalls(s, node, ipamd);
  }, 120_000);

  afterAll(async () => {
    calls?.close();
    await s?.close();
  });

  it('runs ADD, CHECK and DEL inside ipamd and wires the pod as the Node plugin does', async () => {
    const pod = newPod('p1');
    const before = served();
    const { result, address } = await add(pod);
    await servedReaches(before + 1);
    expect(result.cniVersion).toBe('1.1.0');
    expect(pod.ns!.json<{ addr_info: { local: string }[] }[]>('addr', 'show', 'eth0')[0]!.addr_info).toEqual(
      expect.arrayContaining([expect.objectContaining({ local: address })]),
    );
    expect(await hostRoute(address)).toMatch(/dev eni[0-9a-f]{11}/);
    expect(pod.ns!.status('ping', ['-n', '-c1', '-W2', node.primaryIp])).toBe(0);

    const check = await call('CHECK', pod, JSON.stringify(conf({ prevResult: result })));
    expect(check.code, check.raw).toBe(0);
    pod.ns!.ip('route', 'del', 'default');
    const broken = await call('CHECK', pod, JSON.stringify(conf({ prevResult: result })));
    expect(broken.json?.code).toBe(104);

    const del = await call('DEL', pod, JSON.stringify(conf({ prevResult: result })));
    expect(del.code, del.raw).toBe(0);
    expect(await hostRoute(address)).toBe('');
    expect(pod.ns!.linkNames()).not.toContain('eth0');
    expect(ipamd.checkpoint().allocations.some((a) => a.containerId === pod.containerId)).toBe(false);
    const again = await call('DEL', pod, JSON.stringify(conf()));
    expect(again.code, again.raw).toBe(0);
    await servedReaches(before + 5);
  });

  it('serves STATUS and VERSION through ipamd', async () => {
    const status = await call('STATUS', { name: 'x', containerId: 'x' }, JSON.stringify(conf()));
    expect(status.code, status.raw).toBe(0);
    const version = await call('VERSION', { name: 'x', containerId: 'x' }, JSON.stringify(conf()));
    expect(version.json).toMatchObject({ cniVersion: '1.1.0', supportedVersions: expect.any(Array) });
  });

  it('wires pods started at the same moment to distinct addresses', async () => {
    const pods = [newPod('c1'), newPod('c2'), newPod('c3')];
    const added = await Promise.all(pods.map(add));
    expect(new Set(added.map((a) => a.address)).size).toBe(3);
    for (const [i, pod] of pods.entries()) {
      const del = await call('DEL', pod, JSON.stringify(conf({ prevResult: added[i]!.result })));
      expect(del.code, del.raw).toBe(0);
      expect(await hostRoute(added[i]!.address)).toBe('');
    }
  });

  it('answers malformed input with the same error as the Node plugin, through ipamd or not', async () => {
    const pod = newPod('bad');
    const sock = ipamd.socketPath;
    const cases: {
      what: string;
      stdin: string;
      env?: Record<string, string | undefined>;
      code: number;
      /** Where the call runs: ipamd, or the Node plugin when the shim cannot find ipamd's socket. */
      via: 'ipamd' | 'node';
    }[] = [
      // ipamdSocket is readable, so ipamd itself decodes the broken JSON.
      { what: 'truncated JSON', stdin: `{"ipamdSocket":"${sock}","cniVersion":`, code: 6, via: 'ipamd' },
      { what: 'not JSON', stdin: 'not json', code: 6, via: 'node' },
      {
        what: 'unknown cniVersion',
        stdin: JSON.stringify(conf({ cniVersion: '9.9.9' })),
        code: 1,
        via: 'ipamd',
      },
      { what: 'name missing', stdin: JSON.stringify(conf({ name: undefined })), code: 7, via: 'ipamd' },
      {
        what: 'ipamdSocket not a string',
        stdin: JSON.stringify(conf({ ipamdSocket: 7 })),
        code: 7,
        via: 'node',
      },
      {
        what: 'CNI_COMMAND missing',
        stdin: JSON.stringify(conf()),
        env: { CNI_COMMAND: undefined },
        code: 4,
        via: 'ipamd',
      },
      {
        what: 'CNI_NETNS missing',
        stdin: JSON.stringify(conf()),
        env: { CNI_NETNS: undefined },
        code: 4,
        via: 'ipamd',
      },
      {
        what: 'CNI_NETNS not a namespace',
        stdin: JSON.stringify(conf()),
        env: { CNI_NETNS: '/proc/nonexistent/ns/net' },
        code: 4,
        via: 'ipamd',
      },
    ];
    for (const c of cases) {
      const before = served();
      const viaShim = await call('ADD', pod, c.stdin, { env: c.env });
      if (c.via === 'ipamd') await servedReaches(before + 1);
      else expect(served(), `${c.what} must not reach ipamd`).toBe(before);
      const viaNode = await call('ADD', pod, c.stdin, { env: c.env, exe: 'node' });
      expect(viaShim.code, c.what).toBe(1);
      expect(viaShim.json?.code, `${c.what}: ${viaShim.raw}`).toBe(c.code);
      expect(viaShim.json, c.what).toEqual(viaNode.json);
    }
    expect(pod.ns!.linkNames()).toEqual(['lo']);
  });

  it('hands a config too large to forward to the Node plugin, stdin intact', async () => {
    const pod = newPod('big');
    const big = JSON.stringify(conf({ padding: 'x'.repeat(200 * 1024) }));
    const before = served();
    const r = await call('ADD', pod, big);
    expect(r.code, r.raw).toBe(0);
    expect(served()).toBe(before);
    const del = await call('DEL', pod, JSON.stringify(conf({ prevResult: r.json })));
    expect(del.code, del.raw).toBe(0);
    await servedReaches(before + 1);
  });

  it('falls back to the Node plugin when ipamd is down: DEL from prevResult succeeds, ADD says 11', async () => {
    const pod = newPod('down');
    const { result, address } = await add(pod);
    await ipamd.kill('SIGTERM');
    expect(existsSync(ipamd.socketPath)).toBe(false);

    const del = await call('DEL', pod, JSON.stringify(conf({ prevResult: result })));
    expect(del.code, del.raw).toBe(0);
    expect(await hostRoute(address)).toBe('');
    expect(pod.ns!.linkNames()).toEqual(['lo']);

    const add2 = await call('ADD', pod, JSON.stringify(conf()));
    expect(add2.json?.code, add2.raw).toBe(11);
    expect(pod.ns!.linkNames()).toEqual(['lo']);
    const version = await call('VERSION', pod, JSON.stringify(conf({ cniVersion: '0.4.0' })));
    expect(version.json).toMatchObject({ cniVersion: '0.4.0' });
  });
});
