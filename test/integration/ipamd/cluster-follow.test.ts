// The real dist/ipamd.mjs in a local-VPC instance following its node at run time: the stand-in API
// server (list + watch, HTTPS) listens inside the instance's namespace; the operator relabels the node
// to another ENIConfig and raises its pod capacity; ipamd grows to the new max pods and creates its
// next ENI in the new ENIConfig's subnet with its security group, leaving the first ENI where it is.
import type { Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns, netnsPath } from '../../../lib/net/netns.js';
import {
  type FakeApiServer,
  selfSignedCert,
  startFakeApiServer,
  tempDir,
  writeKubeconfig,
} from '../../unit/ipamd/k8s/api-server.js';
import { bundleMissing, eventually, Scenario } from './fixture.js';

const NODE = 'ip-follow-node-a';
const node = (eniConfig: string, pods: string) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: NODE, labels: { 'k8s.amazonaws.com/eniConfig': eniConfig } },
  status: { capacity: { pods } },
});
const eniConfig = (name: string, subnet: string, group: string) => ({
  apiVersion: 'crd.k8s.amazonaws.com/v1alpha1',
  kind: 'ENIConfig',
  metadata: { name },
  spec: { subnet, securityGroups: [group] },
});

describe.skipIf(bundleMissing())('ipamd following its node in a cluster', () => {
  let s: Scenario;
  let api: FakeApiServer | undefined;
  const tmp = tempDir();
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
    await api?.close();
    tmp.remove();
  });

  it('uses a relabelled ENIConfig and a raised max pods for the next ENI', async () => {
    const inst = await s.launch('m5.large', { subnet: 0 });
    const [subnetA, subnetB] = [s.vpc.subnetIds[0]!, s.vpc.subnetIds[1]!];
    const groupA = s.vpc.state.createSecurityGroup({ vpcId: s.vpc.vpcId });
    const groupB = s.vpc.state.createSecurityGroup({ vpcId: s.vpc.vpcId });
    const tls = selfSignedCert(tmp.dir);
    // Created inside the instance's namespace (listen without a host binds synchronously, while switched).
    api = await startFakeApiServer(tls, {
      listen: (srv: Server) => inNetns(netnsPath(inst.netns), () => srv.listen(0)),
    });
    const port = new URL(api.url).port;
    const kubeconfig = writeKubeconfig(tmp.dir, `https://127.0.0.1:${port}`, 'it-token', tls.cert);
    api.put('node', NODE, node('pods-a', '3'));
    api.put('eniconfig', 'pods-a', eniConfig('pods-a', subnetA, groupA));
    api.put('eniconfig', 'pods-b', eniConfig('pods-b', subnetB, groupB));

    const ipamd = s.startIpamd(inst, {
      KUBECONFIG: kubeconfig,
      MY_NODE_NAME: NODE,
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
    });
    await ipamd.waitServing();
    const secondary = () => s.enisOf(inst).filter((e) => e.attachment?.deviceIndex !== 0);
    // Max pods 3 from the node: one ENI in pods-a's subnet holding 3 addresses, no more.
    await eventually(() => secondary()[0]?.privateIps.length === 4, 15_000, 'first ENI with 3 addresses');
    expect(secondary().map((e) => [e.subnetId, e.groups])).toEqual([[subnetA, [groupA]]]);
    await eventually(() => api!.openWatches('node', NODE) === 1, 10_000, 'ipamd watching its node');

    // The operator moves the node to pods-b and raises its capacity.
    api.put('node', NODE, node('pods-b', '20'));
    await eventually(
      () => ipamd.events().some((e) => String(e.msg).startsWith('cluster settings changed: maxPods 3 → 20')),
      10_000,
      'the change logged',
    );
    expect(ipamd.events().find((e) => e.msg === 'pool max pods 3 → 20')).toBeDefined();
    // The first ENI fills up to its 9 slots (WARM_ENI_TARGET=1: one whole ENI free)...
    await eventually(() => secondary()[0]?.privateIps.length === 10, 15_000, 'first ENI full');
    // ...and once a pod uses one, the next ENI goes to pods-b's subnet with its group.
    const add = await ipamd.add('pod-1');
    expect(add.ok, JSON.stringify(add.error)).toBe(true);
    await eventually(() => secondary().length === 2, 20_000, 'a second ENI');
    const bySubnet = secondary()
      .map((e) => [e.attachment?.deviceIndex, e.subnetId, e.groups])
      .sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(bySubnet).toEqual([
      [1, subnetA, [groupA]],
      [2, subnetB, [groupB]],
    ]);

    // Relabelled to an ENIConfig that does not exist: new ENIs are held, with the reason logged.
    api.put('node', NODE, node('pods-c', '20'));
    await eventually(
      () =>
        ipamd
          .events()
          .some((e) => e.msg === 'new ENIs held' && /ENIConfig 'pods-c' not found/.test(String(e.reason))),
      10_000,
      'new ENIs held',
    );
    await ipamd.kill('SIGTERM');
    expect(ipamd.events().find((e) => e.msg === 'ipamd stopped; checkpoint flushed')).toBeDefined();
    await eventually(() => api!.openWatches('node') === 0, 5_000, 'watch closed on shutdown');
  });
});
