// ipamd's Kubernetes API access against a stand-in API server on 127.0.0.1, through the real
// @kubernetes/client-node for a kubeconfig file, plain HTTPS for an in-cluster service account.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterConfigError,
  detectCluster,
  detectClusterSource,
  K8sRequestError,
  readClusterSettings,
  readNodeContext,
} from '../../../../ipamd/k8s/index.js';
import { createLogger } from '../../../../ipamd/log.js';
import {
  type FakeApiServer,
  selfSignedCert,
  startFakeApiServer,
  tempDir,
  writeKubeconfig,
  writeServiceAccount,
} from './api-server.js';

const NODE = 'ip-10-0-1-10.us-west-2.compute.internal';
const AZ = 'us-west-2a';

function node(
  opts: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    pods?: unknown;
    allocatable?: unknown;
  } = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: NODE,
      labels: { 'kubernetes.io/hostname': NODE, ...opts.labels },
      annotations: opts.annotations,
    },
    status: {
      capacity: opts.pods === undefined ? { cpu: '2' } : { cpu: '2', pods: opts.pods },
      ...(opts.allocatable === undefined ? {} : { allocatable: { pods: opts.allocatable } }),
    },
  };
}

function eniConfig(name: string, spec: unknown) {
  return { apiVersion: 'crd.k8s.amazonaws.com/v1alpha1', kind: 'ENIConfig', metadata: { name }, spec };
}

const GOOD_SPEC = { subnet: 'subnet-0a1b2c3d', securityGroups: ['sg-0123abcd', 'sg-0456ef00'] };

describe('ipamd/k8s through a kubeconfig', () => {
  let api: FakeApiServer;
  const tmp = tempDir();
  let env: Record<string, string>;

  beforeAll(async () => {
    const tls = selfSignedCert(tmp.dir);
    api = await startFakeApiServer(tls);
    env = { KUBECONFIG: writeKubeconfig(tmp.dir, api.url, 'token-abc', tls.cert) };
  });
  afterAll(async () => {
    await api?.close();
    tmp.remove();
  });
  beforeEach(() => {
    api.nodes.clear();
    api.eniConfigs.clear();
    api.requests.length = 0;
    api.failWith = null;
    api.delayMs = 0;
  });

  const read = (customNetworking: boolean, extra: object = {}) => {
    const access = detectCluster(env);
    if (!access) throw new Error('expected a cluster');
    return readNodeContext(access, { nodeName: NODE, availabilityZone: AZ, customNetworking, ...extra });
  };

  it('reads max pods from the node capacity, sending the kubeconfig token', async () => {
    api.nodes.set(NODE, node({ pods: '29' }));
    expect(await read(false)).toEqual({ maxPods: 29 });
    expect(api.requests).toEqual([{ path: `/api/v1/nodes/${NODE}`, authorization: 'Bearer token-abc' }]);
  });

  it('falls back to allocatable pods, and leaves max pods unset when the kubelet has not reported it', async () => {
    api.nodes.set(NODE, node({ allocatable: '17' }));
    expect(await read(false)).toEqual({ maxPods: 17 });
    // Capacity is the kubelet's --max-pods; it wins over allocatable when both are reported.
    api.nodes.set(NODE, node({ pods: '110', allocatable: '100' }));
    expect(await read(false)).toEqual({ maxPods: 110 });
    api.nodes.set(NODE, node());
    expect(await read(false)).toEqual({});
  });

  it('rejects a pod capacity that is not a count', async () => {
    api.nodes.set(NODE, node({ pods: '1k' }));
    await expect(read(false)).rejects.toThrow(`node '${NODE}': status.capacity.pods "1k" is not a pod count`);
  });

  it('uses the ENIConfig named by the node label', async () => {
    api.nodes.set(NODE, node({ pods: '110', labels: { 'k8s.amazonaws.com/eniConfig': 'pods-a' } }));
    api.eniConfigs.set('pods-a', eniConfig('pods-a', GOOD_SPEC));
    api.eniConfigs.set(AZ, eniConfig(AZ, { subnet: 'subnet-99999999', securityGroups: ['sg-99999999'] }));
    expect(await read(true)).toEqual({
      maxPods: 110,
      eniConfigName: 'pods-a',
      eniConfigNameSource: 'label',
      eniConfig: GOOD_SPEC,
    });
    expect(api.requests.map((r) => r.path)).toEqual([
      `/api/v1/nodes/${NODE}`,
      '/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/pods-a',
    ]);
  });

  it('prefers the annotation to the label, and honours custom label keys', async () => {
    api.nodes.set(
      NODE,
      node({
        labels: { 'k8s.amazonaws.com/eniConfig': 'from-label', 'example.com/eni': 'custom-label' },
        annotations: { 'k8s.amazonaws.com/eniConfig': 'from-annotation' },
      }),
    );
    for (const n of ['from-label', 'custom-label', 'from-annotation'])
      api.eniConfigs.set(n, eniConfig(n, GOOD_SPEC));
    expect((await read(true)).eniConfigName).toBe('from-annotation');
    const custom = await read(true, {
      eniConfigLabel: 'example.com/eni',
      eniConfigAnnotation: 'example.com/none',
    });
    expect([custom.eniConfigName, custom.eniConfigNameSource]).toEqual(['custom-label', 'label']);
    // An externally managed label outranks both.
    api.nodes.set(
      NODE,
      node({
        labels: { 'vpc.amazonaws.com/externalEniConfig': 'from-label' },
        annotations: { 'k8s.amazonaws.com/eniConfig': 'from-annotation' },
      }),
    );
    expect(await read(true)).toMatchObject({
      eniConfigName: 'from-label',
      eniConfigNameSource: 'external-label',
    });
  });

  it('falls back to the ENIConfig named after the availability zone', async () => {
    api.nodes.set(NODE, node({ pods: '29' }));
    api.eniConfigs.set(AZ, eniConfig(AZ, GOOD_SPEC));
    expect(await read(true)).toMatchObject({
      eniConfigName: AZ,
      eniConfigNameSource: 'zone',
      eniConfig: GOOD_SPEC,
    });
    // The node's zone label, when present, names the zone.
    api.nodes.set(NODE, node({ labels: { 'topology.kubernetes.io/zone': 'us-west-2b' } }));
    api.eniConfigs.set('us-west-2b', eniConfig('us-west-2b', { ...GOOD_SPEC, subnet: 'subnet-0b0b0b0b' }));
    expect((await read(true)).eniConfig?.subnet).toBe('subnet-0b0b0b0b');
  });

  it('falls back to the ENIConfig named "default" when none is named after the zone', async () => {
    api.nodes.set(NODE, node({ pods: '29' }));
    api.eniConfigs.set('default', eniConfig('default', GOOD_SPEC));
    expect(await read(true)).toMatchObject({ eniConfigName: 'default', eniConfigNameSource: 'default' });
    expect(api.requests.map((r) => r.path.split('/').pop())).toEqual([NODE, AZ, 'default']);
  });

  it('fails clearly when the ENIConfig does not exist', async () => {
    api.nodes.set(NODE, node({ pods: '29' }));
    await expect(read(true)).rejects.toThrow(
      `ENIConfig 'us-west-2a' not found (nor 'default'), named by the availability zone of node '${NODE}'`,
    );
    // A name the node gives explicitly is not second-guessed.
    api.nodes.set(NODE, node({ labels: { 'k8s.amazonaws.com/eniConfig': 'pods-x' } }));
    api.eniConfigs.set('default', eniConfig('default', GOOD_SPEC));
    await expect(read(true)).rejects.toThrow(
      /^ENIConfig 'pods-x' not found, named by label k8s.amazonaws.com\/eniConfig/,
    );
  });

  it("accepts an ENIConfig without security groups (the primary ENI's apply)", async () => {
    api.nodes.set(NODE, node({ labels: { 'k8s.amazonaws.com/eniConfig': 'x' } }));
    api.eniConfigs.set('x', eniConfig('x', { subnet: 'subnet-0a1b2c3d' }));
    expect((await read(true)).eniConfig).toEqual({ subnet: 'subnet-0a1b2c3d', securityGroups: [] });
  });

  it.each([
    [{ securityGroups: ['sg-0123abcd'] }, "ENIConfig 'x' has no spec.subnet"],
    [{ subnet: 'subnet-0a1b2c3d', securityGroups: 'sg-0123abcd' }, 'lists more than 16'],
    [
      { subnet: 'vpc-123', securityGroups: ['sg-0123abcd'] },
      `ENIConfig 'x': spec.subnet "vpc-123" is not a subnet id`,
    ],
    [{ subnet: 'subnet-0a1b2c3d', securityGroups: Array(17).fill('sg-0123abcd') }, 'lists more than 16'],
    [
      { subnet: 'subnet-0a1b2c3d', securityGroups: ['default'] },
      'entry "default" is not a security group id',
    ],
    [undefined, "ENIConfig 'x' has no spec"],
  ])('rejects a malformed ENIConfig (%j)', async (spec, message) => {
    api.nodes.set(NODE, node({ labels: { 'k8s.amazonaws.com/eniConfig': 'x' } }));
    api.eniConfigs.set('x', eniConfig('x', spec));
    await expect(read(true)).rejects.toThrow(message);
  });

  it('rejects an ENIConfig name that cannot be an object name', async () => {
    api.nodes.set(NODE, node({ labels: { 'k8s.amazonaws.com/eniConfig': 'Bad_Name' } }));
    await expect(read(true)).rejects.toThrow(
      /ENIConfig name "Bad_Name" from label k8s.amazonaws.com\/eniConfig/,
    );
    expect(api.requests).toHaveLength(1);
  });

  it('fails clearly when the node is not found', async () => {
    await expect(read(false)).rejects.toThrow(`node '${NODE}' not found in the API server`);
  });

  it('reports HTTP failures with the status and an RBAC hint on 403', async () => {
    api.failWith = 403;
    const err = await read(false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(K8sRequestError);
    expect((err as K8sRequestError).status).toBe(403);
    expect((err as Error).message).toMatch(/HTTP 403: injected failure .*ClusterRole/);
    api.failWith = 500;
    await expect(read(false)).rejects.toThrow(/GET node '.*' from kubeconfig .* failed with HTTP 500/);
  });

  it('gives up on an API server that does not answer', async () => {
    api.delayMs = 2_000;
    const access = detectCluster(env, { requestTimeoutMs: 200 });
    const t = Date.now();
    await expect(access?.readNode(NODE)).rejects.toThrow(/got no answer within 200 ms/);
    expect(Date.now() - t).toBeLessThan(1_500);
  });

  it("readClusterSettings: the daemon's view, from the environment's API server", async () => {
    const log = createLogger('silent');
    const o = {
      nodeName: NODE,
      availabilityZone: AZ,
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
      wantEniConfig: true,
      log,
      env,
    };
    api.nodes.set(NODE, node({ pods: '58' }));
    api.eniConfigs.set(AZ, eniConfig(AZ, GOOD_SPEC));
    expect(await readClusterSettings(o)).toEqual({ maxPods: 58, eniConfigName: AZ, eniConfig: GOOD_SPEC });
    expect(await readClusterSettings({ ...o, wantEniConfig: false })).toEqual({
      maxPods: 58,
      eniConfigName: null,
      eniConfig: null,
    });
    await expect(readClusterSettings({ ...o, env: {} })).rejects.toThrow(/no Kubernetes API server/);
  });
});

describe('ipamd/k8s in a pod (service account, HTTPS)', () => {
  let api: FakeApiServer;
  const tmp = tempDir();
  let env: Record<string, string>;

  beforeAll(async () => {
    const tls = selfSignedCert(tmp.dir);
    api = await startFakeApiServer(tls);
    const sa = writeServiceAccount(tmp.dir, 'sa-token-1', tls.cert);
    env = {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: new URL(api.url).port,
      K8S_SERVICE_ACCOUNT_DIR: sa,
    };
  });
  afterAll(async () => {
    await api?.close();
    tmp.remove();
  });

  it('verifies the API server with the service account CA and sends its token', async () => {
    api.nodes.set(NODE, node({ pods: '35', labels: { 'k8s.amazonaws.com/eniConfig': 'pods-a' } }));
    api.eniConfigs.set('pods-a', eniConfig('pods-a', GOOD_SPEC));
    const access = detectCluster(env);
    expect(access?.server).toBe(api.url);
    const ctx = await readNodeContext(access!, {
      nodeName: NODE,
      availabilityZone: AZ,
      customNetworking: true,
    });
    expect(ctx).toMatchObject({ maxPods: 35, eniConfig: GOOD_SPEC });
    expect(api.requests.every((r) => r.authorization === 'Bearer sa-token-1')).toBe(true);
  });

  it('reads a rotated token on the next request, and names an unreadable or empty token', async () => {
    const sa = env.K8S_SERVICE_ACCOUNT_DIR!;
    api.nodes.set(NODE, node({ pods: '35' }));
    const access = detectCluster(env)!;
    await access.readNode(NODE);
    writeFileSync(join(sa, 'token'), 'sa-token-2\n');
    try {
      await access.readNode(NODE);
      expect(api.requests.at(-1)?.authorization).toBe('Bearer sa-token-2');
      writeFileSync(join(sa, 'token'), '  \n');
      await expect(access.readNode(NODE)).rejects.toThrow(/service account token .*token is empty/);
      rmSync(join(sa, 'token'));
      await expect(access.readNode(NODE)).rejects.toThrow(/cannot read the service account token .*ENOENT/);
    } finally {
      writeFileSync(join(sa, 'token'), 'sa-token-1');
    }
  });

  it('refuses an API server whose certificate the CA did not sign', async () => {
    const other = tempDir();
    try {
      const sa = writeServiceAccount(other.dir, 't', selfSignedCert(other.dir).cert, 'sa');
      const access = detectCluster({ ...env, K8S_SERVICE_ACCOUNT_DIR: sa });
      await expect(access?.readNode(NODE)).rejects.toThrow(K8sRequestError);
    } finally {
      other.remove();
    }
  });
});

describe('detectCluster', () => {
  it('is null without KUBERNETES_SERVICE_HOST or KUBECONFIG', () => {
    expect(detectCluster({})).toBeNull();
    expect(detectCluster({ KUBECONFIG: '  ', KUBERNETES_SERVICE_HOST: '' })).toBeNull();
  });

  it('names what is wrong with the environment', () => {
    expect(() => detectClusterSource({ KUBECONFIG: '/nonexistent/kubeconfig' })).toThrow(
      'KUBECONFIG=/nonexistent/kubeconfig: /nonexistent/kubeconfig does not exist',
    );
    expect(() =>
      detectClusterSource({ KUBERNETES_SERVICE_HOST: '10.100.0.1', KUBERNETES_SERVICE_PORT: 'https' }),
    ).toThrow('KUBERNETES_SERVICE_PORT="https" is not a TCP port');
    expect(() =>
      detectClusterSource({ KUBERNETES_SERVICE_HOST: '10.100.0.1', K8S_SERVICE_ACCOUNT_DIR: '/nonexistent' }),
    ).toThrow(ClusterConfigError);
  });

  it('prefers the service account to KUBECONFIG, and uses the first KUBECONFIG entry', () => {
    const tmp = tempDir();
    try {
      writeFileSync(join(tmp.dir, 'token'), 't');
      writeFileSync(join(tmp.dir, 'ca.crt'), 'x');
      const kc = writeKubeconfig(tmp.dir, 'http://127.0.0.1:1', 't');
      expect(
        detectClusterSource({
          KUBERNETES_SERVICE_HOST: 'fd00::1',
          K8S_SERVICE_ACCOUNT_DIR: tmp.dir,
          KUBECONFIG: kc,
        }),
      ).toMatchObject({ kind: 'in-cluster', server: 'https://[fd00::1]:443' });
      expect(detectClusterSource({ KUBECONFIG: `${kc}:/other` })).toEqual({
        kind: 'kubeconfig',
        path: kc,
      });
    } finally {
      tmp.remove();
    }
  });
});
