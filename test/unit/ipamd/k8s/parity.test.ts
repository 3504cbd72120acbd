// The reference's cluster-facing settings: CLUSTER_ENDPOINT (the API server itself, not the service
// VIP), AWS_MANAGE_ENIS_NON_SCHEDULABLE's input (a cordoned node, read and followed) and
// ANNOTATE_POD_IP (vpc.amazonaws.com/pod-ips set after ADD, cleared on DEL when it names the address).
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  annotatingHandler,
  ClusterFollower,
  detectCluster,
  type FollowedSettings,
  POD_IPS_ANNOTATION,
  PodIpAnnotator,
  readClusterSettings,
} from '../../../../ipamd/k8s/index.js';
import { isUnschedulable } from '../../../../ipamd/k8s/node-context.js';
import type { IpamHandler } from '../../../../ipamd/server/handler.js';
import {
  type FakeApiServer,
  selfSignedCert,
  startFakeApiServer,
  tempDir,
  writeServiceAccount,
} from './api-server.js';

const NODE = 'ip-10-0-1-10.us-west-2.compute.internal';
const log = pino({ level: 'silent' });
const cordon = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };
const node = (taints: unknown[] = []) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: NODE },
  spec: { taints },
  status: { capacity: { pods: '29' } },
});

describe('CLUSTER_ENDPOINT and a cordoned node', () => {
  let api: FakeApiServer;
  const tmp = tempDir();
  let env: Record<string, string>;
  beforeAll(async () => {
    const tls = selfSignedCert(tmp.dir);
    api = await startFakeApiServer(tls);
    env = { K8S_SERVICE_ACCOUNT_DIR: writeServiceAccount(tmp.dir, 'sa-token', tls.cert) };
  });
  afterAll(async () => {
    await api?.close();
    tmp.remove();
  });

  it('reaches the API server at CLUSTER_ENDPOINT with the service account, no KUBERNETES_SERVICE_HOST needed', async () => {
    api.put('node', NODE, node());
    const access = detectCluster(env, { endpoint: api.url })!;
    expect(access.server).toBe(api.url);
    const cs = await readClusterSettings({
      nodeName: NODE,
      availabilityZone: 'us-west-2a',
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
      wantEniConfig: false,
      log,
      access,
    });
    expect(cs.maxPods).toBe(29);
    expect(cs.unschedulable).toBeUndefined();
    expect(api.requests.at(-1)?.authorization).toBe('Bearer sa-token');
    // The endpoint wins over the service VIP; without a mounted token it is a clear error.
    expect(
      detectCluster({ ...env, KUBERNETES_SERVICE_HOST: '10.100.0.1' }, { endpoint: api.url })!.server,
    ).toBe(api.url);
    expect(() => detectCluster({ K8S_SERVICE_ACCOUNT_DIR: '/nonexistent' }, { endpoint: api.url })).toThrow(
      /CLUSTER_ENDPOINT is set but .*token does not exist/,
    );
  });

  it('reads a cordon at start and follows cordon and uncordon', async () => {
    api.put('node', NODE, node([cordon]));
    const access = detectCluster(env, { endpoint: api.url })!;
    const where = {
      nodeName: NODE,
      availabilityZone: 'us-west-2a',
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
      wantEniConfig: false,
      log,
      access,
    };
    const cs = await readClusterSettings(where);
    expect(cs.unschedulable).toBe(true);
    const changes: FollowedSettings[] = [];
    const follower = new ClusterFollower({
      ...where,
      initial: { ...cs, unschedulable: false },
      onChange: (n) => changes.push(n),
      resyncMs: 60_000,
      watchTimeoutSeconds: 30,
      backoffBaseMs: 20,
      backoffMaxMs: 200,
    });
    follower.start();
    try {
      await until(() => changes.some((c) => c.unschedulable === true));
      api.put('node', NODE, node([{ key: 'other', effect: 'NoSchedule' }]));
      await until(() => changes.at(-1)?.unschedulable === false);
    } finally {
      await follower.stop();
    }
  });

  it('counts only the NoSchedule unschedulable taint as cordoned', () => {
    expect(isUnschedulable(node([cordon]))).toBe(true);
    expect(isUnschedulable(node([{ ...cordon, effect: 'NoExecute' }]))).toBe(false);
    expect(isUnschedulable(node([{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }]))).toBe(
      false,
    );
    expect(isUnschedulable({ metadata: {} })).toBe(false);
  });
});

async function until(fn: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ANNOTATE_POD_IP', () => {
  function fakeCluster(initial: Record<string, Record<string, string>> = {}) {
    const pods = new Map(Object.entries(initial));
    const patches: { pod: string; annotations: Record<string, string> }[] = [];
    let failures = 0;
    return {
      pods,
      patches,
      failNext: (n: number) => {
        failures = n;
      },
      access: {
        readPod: async (ns: string, name: string) => {
          const a = pods.get(`${ns}/${name}`);
          return a === undefined ? null : { metadata: { annotations: a } };
        },
        patchPodAnnotations: async (ns: string, name: string, annotations: Record<string, string>) => {
          if (failures > 0) {
            failures--;
            throw new Error('HTTP 500');
          }
          patches.push({ pod: `${ns}/${name}`, annotations });
          const key = `${ns}/${name}`;
          if (!pods.has(key)) return false;
          pods.set(key, { ...pods.get(key), ...annotations });
          return true;
        },
      },
    };
  }
  const inner = (address: string): IpamHandler => ({
    add: async () => ({ address }) as never,
    del: async () => ({ address, deviceNumber: 0, routeTable: 254, hostVethMac: null, heldByOthers: [] }),
    gc: async () => ({ released: [] }),
    health: async () => ({ ready: true }) as never,
  });

  it('annotates after ADD answered, and clears on DEL only the address it set', async () => {
    const c = fakeCluster({ 'default/web': {} });
    const annotator = new PodIpAnnotator(c.access, log, [1]);
    const h = annotatingHandler(inner('10.0.1.5'), annotator, () => ({ namespace: 'default', name: 'web' }));
    const add = {
      v: 1,
      op: 'add',
      network: 'aws-cni',
      containerId: 'c1',
      ifName: 'eth0',
      netns: '/x',
      podNamespace: 'default',
      podName: 'web',
    } as const;
    expect((await h.add(add)).address).toBe('10.0.1.5');
    await annotator.idle();
    expect(c.pods.get('default/web')).toEqual({ [POD_IPS_ANNOTATION]: '10.0.1.5' });
    await h.del({ v: 1, op: 'del', network: 'aws-cni', containerId: 'c1', ifName: 'eth0' });
    await annotator.idle();
    expect(c.pods.get('default/web')).toEqual({ [POD_IPS_ANNOTATION]: '' });
    // A newer sandbox's address is not cleared by an old sandbox's DEL.
    c.pods.set('default/web', { [POD_IPS_ANNOTATION]: '10.0.1.9' });
    await annotator.released({ namespace: 'default', name: 'web' }, '10.0.1.5');
    expect(c.pods.get('default/web')).toEqual({ [POD_IPS_ANNOTATION]: '10.0.1.9' });
  });

  it('retries a failed patch, never fails the CNI call, and leaves pods without a name alone', async () => {
    const c = fakeCluster({ 'default/web': {} });
    c.failNext(2);
    const annotator = new PodIpAnnotator(c.access, log, [1, 1, 1]);
    const h = annotatingHandler(inner('10.0.1.6'), annotator, () => null);
    await h.add({
      v: 1,
      op: 'add',
      network: 'aws-cni',
      containerId: 'c2',
      ifName: 'eth0',
      netns: '/x',
      podNamespace: 'default',
      podName: 'web',
    });
    await annotator.idle();
    expect(c.pods.get('default/web')).toEqual({ [POD_IPS_ANNOTATION]: '10.0.1.6' });
    await h.add({ v: 1, op: 'add', network: 'aws-cni', containerId: 'c3', ifName: 'eth0', netns: '/x' });
    await h.del({ v: 1, op: 'del', network: 'aws-cni', containerId: 'c3', ifName: 'eth0' });
    await annotator.idle();
    expect(c.patches).toHaveLength(1);
    c.failNext(10);
    await expect(
      h.add({
        v: 1,
        op: 'add',
        network: 'aws-cni',
        containerId: 'c4',
        ifName: 'eth0',
        netns: '/x',
        podNamespace: 'default',
        podName: 'web',
      }),
    ).resolves.toMatchObject({ address: '10.0.1.6' });
    await annotator.idle();
  });
});

describe('ANNOTATE_POD_IP against an API server', () => {
  const tmp = tempDir();
  afterAll(() => tmp.remove());

  it('GETs the pod and PATCHes its annotations as a JSON merge patch with the service account', async () => {
    const tls = selfSignedCert(tmp.dir);
    const seen: { method: string; url: string; type?: string; auth?: string; body: string }[] = [];
    let annotations: Record<string, string> = {};
    const server = createServer(tls, (req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        seen.push({
          method: req.method!,
          url: req.url!,
          type: req.headers['content-type'],
          auth: req.headers.authorization,
          body,
        });
        if (req.url !== '/api/v1/namespaces/default/pods/web') {
          res.writeHead(404, { 'content-type': 'application/json' }).end('{"kind":"Status","code":404}');
          return;
        }
        if (req.method === 'PATCH')
          annotations = { ...annotations, ...JSON.parse(body).metadata.annotations };
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ metadata: { name: 'web', annotations } }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const env = { K8S_SERVICE_ACCOUNT_DIR: writeServiceAccount(tmp.dir, 'sa-token', tls.cert, 'sa2') };
      const access = detectCluster(env, { endpoint: url })!;
      const annotator = new PodIpAnnotator(access, log, []);
      await annotator.added({ namespace: 'default', name: 'web' }, '10.0.1.5');
      expect(annotations).toEqual({ [POD_IPS_ANNOTATION]: '10.0.1.5' });
      expect(seen[0]).toMatchObject({
        method: 'PATCH',
        type: 'application/merge-patch+json',
        auth: 'Bearer sa-token',
        body: JSON.stringify({ metadata: { annotations: { [POD_IPS_ANNOTATION]: '10.0.1.5' } } }),
      });
      await annotator.released({ namespace: 'default', name: 'web' }, '10.0.1.5');
      expect(seen.map((r) => r.method)).toEqual(['PATCH', 'GET', 'PATCH']);
      expect(annotations).toEqual({ [POD_IPS_ANNOTATION]: '' });
      // A pod that is gone: nothing to clear, no error.
      await annotator.released({ namespace: 'default', name: 'gone' }, '10.0.1.5');
      expect(seen.at(-1)).toMatchObject({ method: 'GET', url: '/api/v1/namespaces/default/pods/gone' });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
