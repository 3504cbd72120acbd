/**
 * A restart that drops a checkpointed assignment because its pod's namespace is gone (the runtime
 * lost the sandbox, no DEL ever came) also removes that pod's host routing: its rules would
 * otherwise stay on the node for good (found by the churn soak: rules at 512/1536 for addresses no
 * pod held after every pod was deleted). A pod whose namespace still exists keeps everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuilt } from '../cni/harness.js';
import { NodeCalls } from '../cni/node-calls.js';
import { bundleMissing, eventually, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('restore and host routing', () => {
  let s: Scenario;
  let n: NodeCalls | undefined;
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
  });
  afterAll(async () => {
    n?.close();
    await s?.close();
  });

  it('a pod whose namespace vanished without DEL loses its address and its host rules at restart', async () => {
    const node = await s.launch('m5.large');
    const first = s.startIpamd(node, { IP_COOLDOWN_PERIOD: '0' });
    await first.waitServing();
    n = new NodeCalls(s, node, first);
    const forgotten = n.newPod('forgotten');
    const kept = n.newPod('kept');
    const lost = await n.add(forgotten);
    const live = await n.add(kept);
    expect(await n.hostRules(lost.address)).not.toEqual([]);

    forgotten.ns!.delete(); // the veth goes with it; the host rules stay
    await first.kill('SIGKILL');
    const second = s.startIpamd(node, { IP_COOLDOWN_PERIOD: '0' }, first.dir);
    await second.waitServing();

    const held = second.checkpoint().allocations.map((a) => a.address);
    expect(held).not.toContain(lost.address);
    expect(held).toContain(live.address);
    expect(await n.hostRules(lost.address)).toEqual([]);
    // The pod that is still there is untouched.
    expect(await n.hostRules(live.address)).not.toEqual([]);
    const check = await n.call('CHECK', kept, JSON.stringify(n.conf({ prevResult: live.result })));
    expect(check.code, check.raw).toBe(0);
    await eventually(
      () => second.events().some((e) => e.msg === 'checkpoint entry dropped' && e.address === lost.address),
      5_000,
      'the drop logged',
    );
  });
});
