/**
 * The bounds on ipamd's HTTP listeners (introspection, metrics): a connection cap that evicts the
 * longest-idle connection, so a flood of idle clients holds at most the cap and a scrape still gets
 * through; busy connections are never evicted; silent and slow clients are timed out; closing over
 * the cap is logged rate-limited.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HTTP_LIMITS, type HttpServer } from '../../../../ipamd/server/http.js';
import { startIntrospectionServer } from '../../../../ipamd/server/introspection.js';
import { startMetricsServer } from '../../../../ipamd/server/metrics-server.js';

const silent = pino({ level: 'silent' });
const servers: HttpServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An idle client: connects and sends nothing. Resolves once connected; `closed` once the server hangs up. */
function idleClient(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    sockets.push(socket);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

async function until(fn: () => boolean, ms = 5_000): Promise<void> {
  for (const deadline = Date.now() + ms; !fn(); ) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('HTTP listener limits', () => {
  it('defaults: a cap and timeouts on every listener', () => {
    expect(HTTP_LIMITS.maxConnections).toBeGreaterThan(0);
    expect(HTTP_LIMITS.maxConnections).toBeLessThanOrEqual(128);
    expect(HTTP_LIMITS.idleTimeoutMs).toBeLessThanOrEqual(30_000);
    expect(HTTP_LIMITS.headersTimeoutMs).toBeLessThanOrEqual(HTTP_LIMITS.requestTimeoutMs);
  });

  it('500 idle connections hold at most the cap, and a scrape still works', async () => {
    const srv = await startMetricsServer({
      bind: '127.0.0.1:0',
      log: silent,
      limits: { maxConnections: 16 },
    });
    servers.push(srv);
    const clients = [];
    for (let i = 0; i < 500; i++) clients.push(await idleClient(srv.port));
    await until(() => srv.connections <= 16);
    let open = 0;
    await sleep(50);
    for (const c of clients) if (!c.socket.destroyed && c.socket.readyState === 'open') open++;
    expect(open).toBeLessThanOrEqual(16);
    const scrape = await get(srv.port, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('awscni_');
    expect(srv.connections).toBeLessThanOrEqual(16);
  });

  it('evicts the longest-idle connection first', async () => {
    const srv = await startMetricsServer({ bind: '127.0.0.1:0', log: silent, limits: { maxConnections: 3 } });
    servers.push(srv);
    const [a, b, c] = [await idleClient(srv.port), await idleClient(srv.port), await idleClient(srv.port)];
    await until(() => srv.connections === 3);
    await idleClient(srv.port);
    await a!.closed;
    await sleep(50);
    expect(b!.socket.destroyed).toBe(false);
    expect(c!.socket.destroyed).toBe(false);
  });

  it('never evicts a connection with a request in progress: the newcomer is closed instead', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const srv = await startIntrospectionServer({
      bind: '127.0.0.1:0',
      log: silent,
      limits: { maxConnections: 2 },
      views: {
        enis: () => held.then(() => ['eni-1']),
        pods: () => [],
        config: () => ({}),
        health: () => ({}),
        referenceEnis: () => ({}),
        eniConfigName: () => null,
        networkutilsEnv: () => ({}),
        ipamdEnv: () => ({}),
      },
    });
    servers.push(srv);
    const slow = [get(srv.port, '/v1/vpc-cni/enis'), get(srv.port, '/v1/vpc-cni/enis')];
    await until(() => srv.connections === 2);
    await sleep(50); // both requests parsed: both connections busy
    const newcomer = await idleClient(srv.port);
    await newcomer.closed;
    release();
    const answers = await Promise.all(slow);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
  });

  it('closes a connection that sends nothing within the idle timeout', async () => {
    const srv = await startMetricsServer({
      bind: '127.0.0.1:0',
      log: silent,
      limits: { idleTimeoutMs: 200 },
    });
    servers.push(srv);
    const c = await idleClient(srv.port);
    const t0 = Date.now();
    await c.closed;
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('closes a connection whose headers never finish (slow loris)', async () => {
    const srv = await startMetricsServer({
      bind: '127.0.0.1:0',
      log: silent,
      limits: { headersTimeoutMs: 300, requestTimeoutMs: 600 },
    });
    servers.push(srv);
    const c = await idleClient(srv.port);
    c.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    // Keep trickling header bytes so the idle timeout never fires; the headers deadline must.
    const drip = setInterval(() => c.socket.writable && c.socket.write('X-a: b\r\n'), 50);
    try {
      await c.closed;
    } finally {
      clearInterval(drip);
    }
  });

  it('refuses a header block over the limit', async () => {
    const srv = await startMetricsServer({ bind: '127.0.0.1:0', log: silent });
    servers.push(srv);
    const c = await idleClient(srv.port);
    let reply = '';
    c.socket.on('data', (d) => {
      reply += d;
    });
    c.socket.write(
      `GET /metrics HTTP/1.1\r\nHost: x\r\nX-big: ${'a'.repeat(HTTP_LIMITS.maxHeaderBytes)}\r\n\r\n`,
    );
    await c.closed;
    expect(reply).toMatch(/^HTTP\/1\.1 431/);
  });

  it('logs closing over the cap at most once per window, with the count', async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) });
    const srv = await startMetricsServer({ bind: '127.0.0.1:0', log, limits: { maxConnections: 1 } });
    servers.push(srv);
    for (let i = 0; i < 200; i++) await idleClient(srv.port);
    await sleep(100);
    const warns = lines.filter((l) => String(l.msg).includes('over the cap'));
    expect(warns.length).toBeGreaterThanOrEqual(1);
    expect(warns.length).toBeLessThanOrEqual(2);
    expect(warns.reduce((n, w) => n + Number(w.closed), 0)).toBeGreaterThan(0);
  });
});
