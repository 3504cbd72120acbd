/**
 * Runbook: a node built from the AMI recipe (infra/ami/install.sh) runs ipamd as the vpc-cni-ipamd
 * systemd service instead of the DaemonSet. The installed unit's sandboxing (CapabilityBoundingSet,
 * NoNewPrivileges, ProtectSystem, ReadWritePaths, PrivateTmp, ...) is applied as systemd applies it
 * (test/support/node/systemd.ts, under runc); containerd starts pods through CRI with the conflist
 * the service writes.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, podGet } from '../../support/node/cluster.js';
import type { KubeletNode } from '../../support/node/kubelet-node.js';
import { capabilityNames, hostCapabilities } from '../../support/node/oci.js';
import type { RuncContainer } from '../../support/node/runc.js';
import { readUnit } from '../../support/node/systemd.js';

let cluster: Cluster;
let node: KubeletNode;

describe('ipamd as the systemd unit runs it, pods through CRI', () => {
  beforeAll(async () => {
    cluster = await Cluster.start({ nodes: 1, form: 'systemd' });
    node = cluster.nodes[0]!;
  }, 180_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 120_000);

  it('runs under the unit sandbox: its capabilities only, no new privileges, a read-only /usr and /etc', async () => {
    // ipamd itself, as the kernel sees it.
    const pid = await (node.form.ipamd as RuncContainer).pid();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const unitCaps =
      readUnit().service.get('CapabilityBoundingSet')?.join(' ').split(/\s+/) ?? hostCapabilities();
    expect(capabilityNames(status, 'CapBnd').sort()).toEqual(unitCaps.sort());
    expect(capabilityNames(status, 'CapEff').sort()).toEqual(unitCaps.sort());
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    const writes = (
      await node.form.ipamd.exec([
        '/bin/sh',
        '-c',
        'touch /usr/vpccni-x /etc/vpccni-x 2>&1; touch /etc/cni/net.d/.w && rm /etc/cni/net.d/.w && echo cni-rw',
      ])
    ).stdout;
    expect(writes).toMatch(/\/usr\/vpccni-x': Read-only file system/);
    expect(writes).toMatch(/\/etc\/vpccni-x': Read-only file system/);
    expect(writes).toContain('cni-rw');
    expect(node.conflist()).toMatchObject({ plugins: [{ type: 'aws-cni' }, { type: 'portmap' }] });
  });

  it('starts and stops a pod through CRI: VPC address, reachable from the node, SNAT to the internet', async () => {
    const pod = await node.kubelet.runPod({ name: 'svc-pod' });
    const st = await node.kubelet.status(pod.id);
    expect(st.ip).toMatch(/^10\.0\.1\.\d+$/);
    expect((await node.host.run('ping', ['-c1', '-W2', st.ip])).code).toBe(0);
    const seen = JSON.parse((await podGet(st.pid, cluster.vpc.inetUrl)) ?? '{}') as {
      sourceAddress?: string;
    };
    expect(seen.sourceAddress).toBe(node.instance.primaryIp);
    await node.kubelet.stopPod(pod.id);
    await node.kubelet.removePod(pod.id);
    expect(node.checkpoint().allocations).toEqual([]);
  });
});
