// The real dist/ipamd.mjs in a local-VPC instance, with a Kubernetes API server stand-in (HTTPS) in the
// same namespace reached with a service account (as the DaemonSet) and through a kubeconfig (as a
// systemd ipamd): max pods comes from the node object and, with custom networking, the pod subnet and
// security group from the ENIConfig the node's label names.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, writeServiceAccount } from '../../unit/ipamd/k8s/api-server.js';
import { bundleMissing, eventually, Scenario } from '../ipamd/fixture.js';

const NODE = 'ip-k8s-node-a';
const PORT = 6443;

// Runs inside the instance namespace with plain node: serves the objects in argv[2] over HTTPS.
const SERVER = `
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
const [objectsFile, key, cert] = process.argv.slice(2);
const objects = JSON.parse(readFileSync(objectsFile, 'utf8'));
createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
  res.setHeader('content-type', 'application/json');
  const obj = req.headers.authorization === 'Bearer it-token' ? objects[req.url] : undefined;
  res.statusCode = obj ? 200 : req.headers.authorization === 'Bearer it-token' ? 404 : 401;
  res.end(JSON.stringify(obj ?? { kind: 'Status', code: res.statusCode, message: 'not found' }));
}).listen(${PORT}, '127.0.0.1', () => console.log('listening'));
`;

describe.skipIf(bundleMissing())('ipamd in a cluster', () => {
  let s: Scenario;
  const dir = mkdtempSync(join(tmpdir(), 'vpccni-k8s-it-'));
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes max pods from the node and the pod subnet from its ENIConfig', async () => {
    const node = await s.launch('m5.large', { subnet: 0 });
    const podSubnet = s.vpc.subnetIds[1]!;
    const podGroup = s.vpc.state.createSecurityGroup({ vpcId: s.vpc.vpcId });
    const { keyFile: key, certFile: cert, cert: certPem } = selfSignedCert(dir);
    writeFileSync(
      join(dir, 'objects.json'),
      JSON.stringify({
        [`/api/v1/nodes/${NODE}`]: {
          metadata: { name: NODE, labels: { 'k8s.amazonaws.com/eniConfig': 'pods' } },
          status: { capacity: { pods: '5' } },
        },
        '/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/pods': {
          metadata: { name: 'pods' },
          spec: { subnet: podSubnet, securityGroups: [podGroup] },
        },
      }),
    );
    writeFileSync(join(dir, 'server.mjs'), SERVER);
    writeFileSync(
      join(dir, 'kubeconfig'),
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: c, cluster: {server: "https://127.0.0.1:${PORT}", certificate-authority: "${cert}"}}]`,
        'users: [{name: u, user: {token: it-token}}]',
        'contexts: [{name: c, context: {cluster: c, user: u}}]',
        'current-context: c',
      ].join('\n'),
    );
    const api = s.vpc.runIn(
      node,
      process.execPath,
      [join(dir, 'server.mjs'), join(dir, 'objects.json'), key, cert],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      api.stdout?.once('data', () => resolve());
      api.once('exit', (code) => reject(new Error(`API server stand-in exited (${code})`)));
    });

    // As the DaemonSet runs: the pod's service account (token + CA); the stray node below uses the kubeconfig.
    const sa = writeServiceAccount(dir, 'it-token', certPem);
    const ipamd = s.startIpamd(node, {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(PORT),
      K8S_SERVICE_ACCOUNT_DIR: sa,
      MY_NODE_NAME: NODE,
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      WARM_IP_TARGET: '2',
    });
    await ipamd.waitServing();
    const read = ipamd.events().find((e) => e.msg === 'node settings read from the Kubernetes API');
    expect(read).toMatchObject({ maxPods: 5, eniConfigName: 'pods', eniConfigFrom: 'label' });

    // Pods get addresses from a secondary ENI in the ENIConfig's subnet, with its security group.
    const first = await ipamd.add('pod-1');
    expect(first.ok, JSON.stringify(first.error)).toBe(true);
    expect(first.result?.deviceNumber).toBeGreaterThan(0);
    const secondary = s.enisOf(node).filter((e) => e.attachment?.deviceIndex !== 0);
    expect(secondary.map((e) => [e.subnetId, e.groups])).toEqual([[podSubnet, [podGroup]]]);

    // The node's capacity (5), not the m5.large table (29), bounds the pods.
    // (Adds may wait for the warm pool to catch up: WARM_IP_TARGET=2.)
    for (let i = 2; i <= 5; i++) {
      await eventually(async () => (await ipamd.add(`pod-${i}`)).ok, 15_000, `pod-${i} added`);
    }
    const sixth = await eventually(
      async () => {
        const r = await ipamd.add('pod-6');
        return r.ok ? null : r;
      },
      10_000,
      'the sixth pod refused',
    );
    expect(sixth.error?.message).toMatch(/max pods \(5\)/);
    expect(readFileSync(ipamd.checkpointPath, 'utf8')).not.toMatch(/pod-6/);

    // A node the API server does not know stops ipamd at start, saying so (it never guesses).
    await ipamd.kill('SIGTERM');
    const stray = s.startIpamd(node, { KUBECONFIG: join(dir, 'kubeconfig'), MY_NODE_NAME: 'ip-k8s-node-b' });
    await expect(stray.waitServing(30_000)).rejects.toThrow(/ipamd exited \(1\)/);
    expect(stray.events().find((e) => e.msg === 'ipamd failed to start')?.err).toMatch(
      /^node 'ip-k8s-node-b' not found in the API server \(kubeconfig .*\); MY_NODE_NAME must be this node's name$/,
    );
  });
});
