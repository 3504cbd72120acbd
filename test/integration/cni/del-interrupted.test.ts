/**
 * A DEL that stops half-way (killed, or a netlink error) is finished by the runtime's next DEL, even
 * with ipamd away, when only the pod's namespace can prove what was the attachment's: the host
 * routing is removed before the pod's interface, so the interface stays as the proof until its
 * routing is gone (found by the churn soak: ipamd killed in the middle of a DEL left the pod's host
 * rules on the node for good once the retry, run by the Node plugin, found no interface).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, Scenario } from '../ipamd/fixture.js';
import { requireBuilt } from './harness.js';
import { NodeCalls } from './node-calls.js';

describe.skipIf(bundleMissing())('an interrupted DEL', () => {
  let s: Scenario;
  let n: NodeCalls;
  let scratch: string;
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node);
    await ipamd.waitServing();
    n = new NodeCalls(s, node, ipamd);
    scratch = `/tmp/${s.vpc.prefix}-del`;
    mkdirSync(scratch, { recursive: true });
  });
  afterAll(async () => {
    n?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await s?.close();
  });

  it('is finished by the next DEL with ipamd away: no host rule or route is left', async () => {
    const pod = n.newPod('half-deleted');
    const { result, address } = await n.add(pod);
    expect(await n.hostRules(address)).not.toEqual([]);
    // ipamd away: the Node plugin runs the DEL and can prove only what the namespace shows.
    const away = JSON.stringify(n.conf({ prevResult: result, ipamdSocket: `${scratch}/absent/ipamd.sock` }));
    const first = await n.call('DEL', pod, away, {
      exe: 'node',
      env: { VPCCNI_CNI_FAILPOINT: `remove host routing for ${address}` },
    });
    expect(first.code, first.raw).not.toBe(0);
    const retry = await n.call('DEL', pod, away, { exe: 'node' });
    expect(retry.code, retry.raw).toBe(0);
    expect(await n.hostRules(address)).toEqual([]);
    expect(await n.hostRoute(address)).toBe('');
    expect(pod.ns!.linkNames()).not.toContain('eth0');
  });
});
