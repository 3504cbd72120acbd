import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../ipamd/config.js';
import { type ApiAccess, readClusterSettings } from '../../../ipamd/k8s.js';

/** A fake API server with one node and one ENIConfig. */
let server: Server;
let api: ApiAccess;
let lastAuth: string | undefined;
const objects = new Map<string, unknown>([
  [
    '/api/v1/nodes/node-a',
    {
      metadata: { name: 'node-a', labels: { 'k8s.amazonaws.com/eniConfig': 'us-west-2a' } },
      status: { capacity: { pods: '58' } },
    },
  ],
  ['/api/v1/nodes/node-b', { metadata: { name: 'node-b' }, status: { capacity: { pods: '17' } } }],
  [
    '/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/us-west-2a',
    { spec: { subnet: 'subnet-0abc', securityGroups: ['sg-0def'] } },
  ],
]);

beforeAll(async () => {
  server = createServer((req, res) => {
    lastAuth = req.headers.authorization;
    const obj = objects.get(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    if (!obj) {
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: 'Status', code: 404, message: 'not found' }));
      return;
    }
    res.end(JSON.stringify(obj));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api = { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: () => 'sa-token' };
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));

const base = {
  eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
  eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
  log: pino({ level: 'silent' }),
};

describe('readClusterSettings', () => {
  it("reads max pods from the node's capacity and its ENIConfig by label", async () => {
    const s = await readClusterSettings({ ...base, nodeName: 'node-a', wantEniConfig: true, api });
    expect(s).toEqual({
      maxPods: 58,
      eniConfigName: 'us-west-2a',
      eniConfig: { subnet: 'subnet-0abc', securityGroups: ['sg-0def'] },
    });
    expect(lastAuth).toBe('Bearer sa-token');
  });

  it('without custom networking it does not need an ENIConfig', async () => {
    const s = await readClusterSettings({ ...base, nodeName: 'node-b', wantEniConfig: false, api });
    expect(s).toEqual({ maxPods: 17, eniConfigName: null, eniConfig: null });
  });

  it('says which node lacks the ENIConfig label, and which node cannot be read', async () => {
    await expect(
      readClusterSettings({ ...base, nodeName: 'node-b', wantEniConfig: true, api }),
    ).rejects.toThrow(/node node-b has no k8s.amazonaws.com\/eniConfig label or annotation/);
    await expect(
      readClusterSettings({ ...base, nodeName: 'node-z', wantEniConfig: false, api }),
    ).rejects.toThrow(/cannot read node node-z from the API server/);
  });

  it('config accepts custom networking without a local ENIConfig only in a cluster', () => {
    const c = loadConfig({
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      KUBERNETES_SERVICE_HOST: '10.100.0.1',
      MY_NODE_NAME: 'node-a',
    });
    expect(c.cluster).toEqual({
      nodeName: 'node-a',
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
    });
    expect(c.eniConfig).toBeNull();
    expect(loadConfig({}).cluster).toBeNull();
  });
});
