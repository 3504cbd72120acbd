import { link, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { IpamHandler } from '../../../../ipamd/server/handler.js';
import { type SocketServer, startSocketServer } from '../../../../ipamd/server/socket.js';
import {
  type AddRequest,
  type AddResult,
  MAX_REQUEST_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
} from '../../../../lib/protocol/ipamd.js';

const log = pino({ level: 'silent' });

interface Reply {
  v: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** Sends raw bytes, optionally half-closes, and resolves with everything the server wrote. */
function exchange(path: string, data: string | Buffer, opts: { end?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    sock.on('connect', () => {
      sock.write(data);
      if (opts.end) sock.end();
    });
  });
}

async function call(path: string, req: unknown): Promise<Reply> {
  const out = await exchange(path, `${JSON.stringify(req)}\n`);
  expect(out.endsWith('\n')).toBe(true);
  expect(out.indexOf('\n')).toBe(out.length - 1);
  return JSON.parse(out) as Reply;
}

function addReq(containerId: string): AddRequest {
  return {
    v: PROTOCOL_VERSION,
    op: 'add',
    network: 'aws-cni',
    containerId,
    ifName: 'eth0',
    netns: '/proc/1/ns/net',
  };
}

function addResult(address: string): AddResult {
  return {
    address,
    eniId: 'eni-1',
    deviceNumber: 1,
    routeTable: 2,
    subnetCidr: '10.0.0.0/24',
    vpcCidrs: ['10.0.0.0/16'],
    snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
    mtu: 9001,
    vethPrefix: 'eni',
    hostVethMac: '02:00:00:00:00:01',
  };
}

/** A handler double recording calls; `add` answers with an address derived from the container id. */
function fakeHandler(overrides: Partial<IpamHandler> = {}) {
  const calls: { op: string; req?: unknown }[] = [];
  const handler: IpamHandler = {
    async add(req) {
      calls.push({ op: 'add', req });
      return addResult(`10.0.0.${Number(req.containerId.replace(/\D/g, '')) % 250}`);
    },
    async del(req) {
      calls.push({ op: 'del', req });
      return { address: '10.0.0.5', deviceNumber: 1, routeTable: 2, hostVethMac: null, heldByOthers: [] };
    },
    async gc(req) {
      calls.push({ op: 'gc', req });
      return { released: [{ containerId: 'gone', ifName: 'eth0', address: '10.0.0.9' }] };
    },
    async health() {
      calls.push({ op: 'health' });
      return { ready: true, freeAddresses: 7 };
    },
    ...overrides,
  };
  return { handler, calls };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

let dir: string;
let path: string;
let server: SocketServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipamd-sock-'));
  path = join(dir, 'run', 'ipamd.sock');
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('socket server round trips', () => {
  it('serves add, del, gc and health and passes the parsed request to the handler', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });

    const add = await call(path, { ...addReq('c42'), podNamespace: 'default', podName: 'web' });
    expect(add).toEqual({ v: 1, ok: true, result: addResult('10.0.0.42') });
    expect(calls[0]).toEqual({
      op: 'add',
      req: { ...addReq('c42'), podNamespace: 'default', podName: 'web' },
    });

    const del = await call(path, { v: 1, op: 'del', network: 'aws-cni', containerId: 'c42', ifName: 'eth0' });
    expect(del).toEqual({
      v: 1,
      ok: true,
      result: { address: '10.0.0.5', deviceNumber: 1, routeTable: 2, hostVethMac: null, heldByOthers: [] },
    });

    const valid = [{ containerId: 'c1', ifName: 'eth0' }];
    const gc = await call(path, { v: 1, op: 'gc', network: 'aws-cni', valid });
    expect(gc.ok).toBe(true);
    expect(calls[2]).toEqual({ op: 'gc', req: { v: 1, op: 'gc', network: 'aws-cni', valid } });

    expect(await call(path, { v: 1, op: 'health' })).toEqual({
      v: 1,
      ok: true,
      result: { ready: true, freeAddresses: 7 },
    });
    expect(calls.map((c) => c.op)).toEqual(['add', 'del', 'gc', 'health']);
  });

  it('accepts a request split over many small writes', async () => {
    const { handler } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const line = `${JSON.stringify({ v: 1, op: 'health' })}\n`;
    const out = await new Promise<string>((resolve, reject) => {
      const sock = connect(path);
      let got = '';
      sock.on('data', (c) => {
        got += c;
      });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
      sock.on('connect', async () => {
        for (const ch of line) {
          sock.write(ch);
          await new Promise((r) => setTimeout(r, 1));
        }
      });
    });
    expect(JSON.parse(out).ok).toBe(true);
  });

  it('answers only the first line of a connection', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const out = await exchange(path, `{"v":1,"op":"health"}\n${JSON.stringify(addReq('c1'))}\n`);
    expect(out.split('\n')).toHaveLength(2);
    expect(calls.map((c) => c.op)).toEqual(['health']);
  });

  it('maps ProtocolError to its code and other errors to internal', async () => {
    const { handler } = fakeHandler({
      add: async () => {
        throw new ProtocolError('exhausted', 'no free address: node at max pods (29)');
      },
      del: async () => {
        throw new TypeError('boom');
      },
    });
    server = await startSocketServer({ path, handler, log });
    expect((await call(path, addReq('c1'))).error).toEqual({
      code: 'exhausted',
      message: 'no free address: node at max pods (29)',
    });
    const del = await call(path, { v: 1, op: 'del', network: 'n', containerId: 'c', ifName: 'eth0' });
    expect(del.ok).toBe(false);
    expect(del.error?.code).toBe('internal');
    expect(del.error?.message).toContain('boom');
  });
});

describe('socket server rejects bad input and keeps serving', () => {
  async function expectStillServing() {
    expect((await call(path, { v: 1, op: 'health' })).ok).toBe(true);
  }

  it('rejects malformed JSON', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const reply = JSON.parse(await exchange(path, '{"v":1,"op":\n')) as Reply;
    expect(reply.ok).toBe(false);
    expect(reply.error?.code).toBe('bad_request');
    expect(reply.error?.message).toMatch(/not valid JSON/);
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('rejects an oversized line without waiting for its end', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    // No newline and the client never ends: the server must cut it off on size alone.
    const big = Buffer.alloc(MAX_REQUEST_BYTES + 10, 0x61);
    const reply = JSON.parse(await exchange(path, big)) as Reply;
    expect(reply.error).toEqual({
      code: 'bad_request',
      message: `request larger than ${MAX_REQUEST_BYTES} bytes`,
    });
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('accepts a line of exactly the maximum size', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const base = JSON.stringify({ v: 1, op: 'health', pad: '' });
    const line = JSON.stringify({ v: 1, op: 'health', pad: 'x'.repeat(MAX_REQUEST_BYTES - base.length) });
    expect(Buffer.byteLength(line)).toBe(MAX_REQUEST_BYTES);
    const reply = JSON.parse(await exchange(path, `${line}\n`)) as Reply;
    expect(reply.ok).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it('rejects a wrong protocol version', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const reply = await call(path, { ...addReq('c1'), v: 2 });
    expect(reply.error?.code).toBe('version_mismatch');
    expect(reply.error?.message).toContain('version 2 not supported');
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('rejects an unknown op and a bad field', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const unknown = await call(path, { v: 1, op: 'steal' });
    expect(unknown.error?.code).toBe('bad_request');
    expect(unknown.error?.message).toContain('unknown op "steal"');
    const bad = await call(path, { ...addReq('c1'), containerId: 7 });
    expect(bad.error?.message).toContain('"containerId"');
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('times out a client that sends nothing', async () => {
    const { handler } = fakeHandler();
    server = await startSocketServer({ path, handler, log, readTimeoutMs: 100 });
    const t0 = Date.now();
    const reply = JSON.parse(await exchange(path, '')) as Reply;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(reply.error).toEqual({ code: 'bad_request', message: 'no complete request line within 100 ms' });
    await expectStillServing();
  });

  it('times out a client that stalls half-way through a line', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log, readTimeoutMs: 100 });
    const reply = JSON.parse(await exchange(path, '{"v":1,"op":"hea')) as Reply;
    expect(reply.error?.message).toContain('within 100 ms');
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('rejects a half-written line followed by end of stream', async () => {
    const { handler, calls } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const reply = JSON.parse(await exchange(path, '{"v":1,"op":"health"}', { end: true })) as Reply;
    expect(reply.error?.code).toBe('bad_request');
    expect(reply.error?.message).toContain('missing newline');
    expect(calls).toHaveLength(0);
    await expectStillServing();
  });

  it('answers a client that half-closes after a full line', async () => {
    const { handler } = fakeHandler();
    server = await startSocketServer({ path, handler, log });
    const reply = JSON.parse(await exchange(path, '{"v":1,"op":"health"}\n', { end: true })) as Reply;
    expect(reply.ok).toBe(true);
  });

  it('survives a client that disconnects before the answer, and the handler still completes', async () => {
    const gate = deferred();
    const done = deferred();
    const { handler } = fakeHandler({
      add: async (req) => {
        await gate.promise;
        done.resolve();
        return addResult(req.containerId === 'c1' ? '10.0.0.1' : '10.0.0.2');
      },
    });
    server = await startSocketServer({ path, handler, log });
    await new Promise<void>((resolve) => {
      const sock = connect(path, () => {
        sock.write(`${JSON.stringify(addReq('c1'))}\n`, () => {
          sock.destroy();
          resolve();
        });
      });
    });
    await new Promise((r) => setTimeout(r, 20));
    gate.resolve();
    await done.promise;
    await expectStillServing();
  });

  it('serves many concurrent clients, each getting its own answer', async () => {
    const { handler } = fakeHandler({
      add: async (req) => {
        await new Promise((r) => setTimeout(r, Math.random() * 20));
        return addResult(
          `10.0.${Number(req.containerId.slice(1)) >> 8}.${Number(req.containerId.slice(1)) & 255}`,
        );
      },
    });
    server = await startSocketServer({ path, handler, log });
    const n = 300;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => call(path, addReq(`c${i}`))));
    replies.forEach((r, i) => {
      expect(r.ok).toBe(true);
      expect((r.result as AddResult).address).toBe(`10.0.${i >> 8}.${i & 255}`);
    });
  });
});

describe('socket file lifecycle', () => {
  it('creates the parent directory and the socket with mode 0600 by default', async () => {
    server = await startSocketServer({ path, handler: fakeHandler().handler, log });
    const st = await stat(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('uses mode 0660 when asked and rejects any other mode', async () => {
    server = await startSocketServer({ path, mode: 0o660, handler: fakeHandler().handler, log });
    expect((await stat(path)).mode & 0o777).toBe(0o660);
    await expect(
      startSocketServer({ path: join(dir, 'x.sock'), mode: 0o666, handler: fakeHandler().handler, log }),
    ).rejects.toThrow('socket mode must be 0600 or 0660, got 0666');
  });

  it('rejects relative and too-long paths', async () => {
    const { handler } = fakeHandler();
    await expect(startSocketServer({ path: 'rel.sock', handler, log })).rejects.toThrow('must be absolute');
    await expect(startSocketServer({ path: `/tmp/${'x'.repeat(120)}`, handler, log })).rejects.toThrow(
      'longer than 107 bytes',
    );
  });

  it('replaces a stale socket left by a dead daemon', async () => {
    // A socket file nobody listens on: listen, hard-link the file elsewhere, close (which unlinks the original).
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'run'), { recursive: true });
    const old = createServer();
    const oldPath = join(dir, 'old.sock');
    await new Promise<void>((r) => old.listen(oldPath, r));
    await link(oldPath, path);
    await new Promise<void>((r) => old.close(() => r()));
    expect((await stat(path)).isSocket()).toBe(true);

    server = await startSocketServer({ path, handler: fakeHandler().handler, log });
    expect((await call(path, { v: 1, op: 'health' })).ok).toBe(true);
  });

  it('refuses to take over a socket another process is serving', async () => {
    const first = await startSocketServer({ path, handler: fakeHandler().handler, log });
    try {
      await expect(startSocketServer({ path, handler: fakeHandler().handler, log })).rejects.toThrow(
        /served by another running process/,
      );
      expect((await call(path, { v: 1, op: 'health' })).ok).toBe(true);
    } finally {
      await first.close();
    }
  });

  it('refuses to delete a regular file at the socket path', async () => {
    await writeFile(join(dir, 'file.sock'), 'precious');
    await expect(
      startSocketServer({ path: join(dir, 'file.sock'), handler: fakeHandler().handler, log }),
    ).rejects.toThrow(/is not a socket/);
    expect((await stat(join(dir, 'file.sock'))).isFile()).toBe(true);
  });

  it('close() waits for in-flight requests, tells idle clients to retry, then removes the socket', async () => {
    const gate = deferred();
    const entered = deferred();
    const { handler } = fakeHandler({
      add: async () => {
        entered.resolve();
        await gate.promise;
        return addResult('10.0.0.77');
      },
    });
    const srv = await startSocketServer({ path, handler, log });
    const inflight = call(path, addReq('c1'));
    await entered.promise;
    const idle = exchange(path, '');
    await new Promise((r) => setTimeout(r, 20));

    let closed = false;
    const closing = srv.close().then(() => {
      closed = true;
    });
    const idleReply = JSON.parse(await idle) as Reply;
    expect(idleReply.error?.code).toBe('not_ready');
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);

    gate.resolve();
    expect(((await inflight).result as AddResult).address).toBe('10.0.0.77');
    await closing;
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    await expect(exchange(path, '{"v":1,"op":"health"}\n')).rejects.toThrow(/ENOENT/);
    // close is idempotent
    await srv.close();
  });
});
