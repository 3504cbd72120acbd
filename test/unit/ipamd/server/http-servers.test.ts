import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Counter, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { eniAllocated } from '../../../../ipamd/metrics.js';
import { parseBind } from '../../../../ipamd/server/bind.js';
import type { HttpServer } from '../../../../ipamd/server/http.js';
import { startIntrospectionServer } from '../../../../ipamd/server/introspection.js';
import { startMetricsServer } from '../../../../ipamd/server/metrics-server.js';

const log = pino({ level: 'silent' });

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string; body: string; allow?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: String(res.headers['content-type']),
          body,
          allow: res.headers.allow,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const servers: HttpServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('parseBind', () => {
  it('parses the spellings the env vars use', () => {
    expect(parseBind('127.0.0.1:61679')).toEqual({ host: '127.0.0.1', port: 61679 });
    expect(parseBind(':61678')).toEqual({ host: undefined, port: 61678 });
    expect(parseBind('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseBind('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseBind('localhost:1')).toEqual({ host: 'localhost', port: 1 });
  });

  it('rejects malformed addresses with the variable name', () => {
    expect(() => parseBind('61678', 'METRICS_BIND_ADDRESS')).toThrow(
      'METRICS_BIND_ADDRESS "61678" is not HOST:PORT',
    );
    expect(() => parseBind('1.2.3.4:99999')).toThrow('port 99999 is above 65535');
    expect(() => parseBind('::1:80')).toThrow('is not HOST:PORT');
    expect(() => parseBind('host:port')).toThrow('is not HOST:PORT');
  });
});

describe('introspection server', () => {
  const views = {
    referenceEnis: () => ({ '0': { TotalIPs: 1, AssignedIPs: 0, ENIs: {} } }),
    eniConfigName: (): string | null => 'us-west-2a',
    networkutilsEnv: () => ({ AWS_VPC_K8S_CNI_CONNMARK: 128 }),
    ipamdEnv: () => ({ WARM_ENI_TARGET: 1 }),
    enis: () => ({ 'eni-1': { deviceNumber: 0, addresses: ['10.0.0.5'] } }),
    pods: async () => [{ containerId: 'c1', address: '10.0.0.5' }],
    config: () => ({ warmEniTarget: 1 }),
    health: () => ({ ready: true }),
  };

  it("serves the reference's documents at its paths, ipamd's own under /v1/vpc-cni/, and an index", async () => {
    const srv = await startIntrospectionServer({ bind: '127.0.0.1:0', views, log });
    servers.push(srv);
    expect(srv.address).toBe(`127.0.0.1:${srv.port}`);
    expect(srv.port).toBeGreaterThan(0);

    const enis = await get(srv.port, '/v1/enis');
    expect(enis.status).toBe(200);
    expect(enis.type).toBe('application/json');
    expect(JSON.parse(enis.body)).toEqual(views.referenceEnis());
    expect(JSON.parse((await get(srv.port, '/v1/eni-configs')).body)).toBe('us-west-2a');
    expect(JSON.parse((await get(srv.port, '/v1/networkutils-env-settings')).body)).toEqual({
      AWS_VPC_K8S_CNI_CONNMARK: 128,
    });
    expect(JSON.parse((await get(srv.port, '/v1/ipamd-env-settings')).body)).toEqual({ WARM_ENI_TARGET: 1 });
    expect(JSON.parse((await get(srv.port, '/v1/vpc-cni/enis')).body)).toEqual(views.enis());
    expect(JSON.parse((await get(srv.port, '/v1/vpc-cni/config')).body)).toEqual({ warmEniTarget: 1 });
    expect(JSON.parse((await get(srv.port, '/v1/pods')).body)).toEqual([
      { containerId: 'c1', address: '10.0.0.5' },
    ]);
    expect(JSON.parse((await get(srv.port, '/v1/health?verbose=1')).body)).toEqual({ ready: true });
    expect(JSON.parse((await get(srv.port, '/')).body).AvailableCommands).toEqual([
      '/v1/enis',
      '/v1/eni-configs',
      '/v1/networkutils-env-settings',
      '/v1/ipamd-env-settings',
      '/v1/vpc-cni/enis',
      '/v1/vpc-cni/config',
      '/v1/pods',
      '/v1/health',
    ]);
  });

  it('answers /v1/eni-configs with 404 without a cluster, as the reference does', async () => {
    const srv = await startIntrospectionServer({
      bind: '127.0.0.1:0',
      views: { ...views, eniConfigName: () => null },
      log,
    });
    servers.push(srv);
    expect((await get(srv.port, '/v1/eni-configs')).status).toBe(404);
  });

  it('listens on a root-only Unix socket with the unix: form, replacing a stale one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'introspect-'));
    try {
      const path = join(dir, 'introspection.sock');
      const first = await startIntrospectionServer({ bind: `unix:${path}`, views, log });
      expect(first.address).toBe(`unix:${path}`);
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const body = await new Promise<string>((resolve, reject) => {
        const req = request({ socketPath: path, path: '/v1/ipamd-env-settings' }, (res) => {
          let b = '';
          res.on('data', (c) => {
            b += c;
          });
          res.on('end', () => resolve(b));
        });
        req.on('error', reject);
        req.end();
      });
      expect(JSON.parse(body)).toEqual({ WARM_ENI_TARGET: 1 });
      await first.close();
      // A socket file left behind (a crash) is replaced; a regular file there is an error.
      writeFileSync(join(dir, 'file'), 'x');
      await expect(
        startIntrospectionServer({ bind: `unix:${join(dir, 'file')}`, views, log }),
      ).rejects.toThrow(/exists and is not a socket/);
      const again = await startIntrospectionServer({ bind: `unix:${path}`, views, log });
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the views on every request (live state, not a snapshot)', async () => {
    let n = 0;
    const srv = await startIntrospectionServer({
      bind: '127.0.0.1:0',
      views: { ...views, health: () => ({ n: ++n }) },
      log,
    });
    servers.push(srv);
    expect(JSON.parse((await get(srv.port, '/v1/health')).body)).toEqual({ n: 1 });
    expect(JSON.parse((await get(srv.port, '/v1/health')).body)).toEqual({ n: 2 });
  });

  it('answers 404 for unknown paths, 405 for writes, 500 when a view throws, and keeps serving', async () => {
    const srv = await startIntrospectionServer({
      bind: '127.0.0.1:0',
      views: {
        ...views,
        pods: () => {
          throw new Error('datastore locked');
        },
      },
      log,
    });
    servers.push(srv);
    const missing = await get(srv.port, '/v1/nope');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toBe('no such path /v1/nope');
    const post = await get(srv.port, '/v1/enis', 'POST');
    expect(post.status).toBe(405);
    expect(post.allow).toBe('GET, HEAD');
    const broken = await get(srv.port, '/v1/pods');
    expect(broken.status).toBe(500);
    expect(JSON.parse(broken.body).error).toContain('datastore locked');
    const head = await get(srv.port, '/v1/enis', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect((await get(srv.port, '/v1/enis')).status).toBe(200);
  });

  it('reports a port already in use with the variable name', async () => {
    const first = await startIntrospectionServer({ bind: '127.0.0.1:0', views, log });
    servers.push(first);
    await expect(startIntrospectionServer({ bind: `127.0.0.1:${first.port}`, views, log })).rejects.toThrow(
      `cannot listen on INTROSPECTION_BIND_ADDRESS "127.0.0.1:${first.port}": EADDRINUSE`,
    );
  });

  it('close() stops listening', async () => {
    const srv = await startIntrospectionServer({ bind: '127.0.0.1:0', views, log });
    await srv.close();
    await expect(get(srv.port, '/v1/enis')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('metrics server', () => {
  it('serves the daemon registry with the reference metric names and process metrics', async () => {
    eniAllocated.set(3);
    const srv = await startMetricsServer({ bind: '127.0.0.1:0', log });
    servers.push(srv);
    const res = await get(srv.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.body).toContain('# TYPE awscni_eni_allocated gauge');
    expect(res.body).toMatch(/^awscni_eni_allocated 3$/m);
    for (const name of [
      'awscni_total_ip_addresses',
      'awscni_assigned_ip_addresses',
      'awscni_ipamd_error_count',
      'awscni_ec2api_req_count',
      'awscni_aws_api_latency_ms',
      'awscni_no_available_ip_addresses',
    ]) {
      expect(res.body).toContain(`# HELP ${name} `);
    }
    expect(res.body).toMatch(/^process_resident_memory_bytes \d+/m);
    // Types as the reference declares them, so dashboards and the metrics helper read them alike.
    for (const [name, type] of [
      ['awscni_ipamd_action_inprogress', 'gauge'],
      ['awscni_total_ipv4_prefixes', 'gauge'],
      ['awscni_assigned_ip_per_cidr', 'gauge'],
      ['awscni_assigned_ip_per_eni', 'gauge'],
      ['awscni_add_ip_req_count', 'counter'],
      ['awscni_del_ip_req_count', 'counter'],
      ['awscni_force_removed_ips', 'counter'],
      ['awscni_aws_api_error_count', 'counter'],
    ]) {
      expect(res.body).toContain(`# TYPE ${name} ${type}`);
    }
  });

  it('can be started twice on the shared registry (restart in-process) without duplicate registration', async () => {
    const a = await startMetricsServer({ bind: '127.0.0.1:0', log });
    await a.close();
    const b = await startMetricsServer({ bind: '127.0.0.1:0', log });
    servers.push(b);
    expect((await get(b.port, '/metrics')).status).toBe(200);
  });

  it('serves a given registry and reflects updates between scrapes', async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'test_things_total', help: 'things', registers: [registry] });
    const srv = await startMetricsServer({ bind: '127.0.0.1:0', log, registry });
    servers.push(srv);
    expect((await get(srv.port, '/metrics')).body).toMatch(/^test_things_total 0$/m);
    c.inc(5);
    expect((await get(srv.port, '/metrics')).body).toMatch(/^test_things_total 5$/m);
    expect((await get(srv.port, '/nope')).status).toBe(404);
  });
});

describe('withComponent', () => {
  it('tags once, never twice with the same value', async () => {
    const { withComponent } = await import('../../../../ipamd/log.js');
    const root = pino({ level: 'silent' });
    const tagged = withComponent(root, 'socket');
    expect(tagged.bindings()).toEqual({ component: 'socket' });
    expect(withComponent(tagged, 'socket')).toBe(tagged);
    expect(withComponent(tagged, 'metrics').bindings().component).toBe('metrics');
  });
});
