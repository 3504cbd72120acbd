import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProbeArgs, probe } from '../../../../ipamd/probe.js';
import { IpamdError, ipamdRequest } from '../../../../ipamd/server/client.js';
import type { IpamHandler } from '../../../../ipamd/server/handler.js';
import { type SocketServer, startSocketServer } from '../../../../ipamd/server/socket.js';
import { type HealthResult, ProtocolError } from '../../../../lib/protocol/ipamd.js';

const log = pino({ level: 'silent' });
let dir: string;
let health: () => Promise<HealthResult>;
let server: SocketServer;
let sockPath: string;
let probeBundle: string;

const handler: IpamHandler = {
  add: () => Promise.reject(new Error('unused')),
  del: () => Promise.reject(new Error('unused')),
  gc: () => Promise.reject(new Error('unused')),
  health: () => health(),
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipamd-probe-'));
  sockPath = join(dir, 'ipamd.sock');
  server = await startSocketServer({ path: sockPath, handler, log });
  // Bundle the probe as scripts/build.mjs does, to exercise the real entry point and exit codes.
  probeBundle = join(dir, 'ipamd-probe.mjs');
  await build({
    entryPoints: ['ipamd/probe.ts'],
    outfile: probeBundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

function runProbe(args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [probeBundle, ...args],
      { env: { PATH: process.env.PATH, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

describe('parseProbeArgs', () => {
  it('defaults to IPAMD_SOCKET_PATH, then the standard path', () => {
    expect(parseProbeArgs([], {})).toEqual({
      socket: '/var/run/aws-node/vpc-cni.sock',
      timeoutMs: 3000,
      liveness: false,
    });
    expect(parseProbeArgs([], { IPAMD_SOCKET_PATH: '/x.sock' }).socket).toBe('/x.sock');
  });

  it('reads flags in both spellings', () => {
    expect(parseProbeArgs(['--socket', '/a', '--timeout=250', '--liveness'], {})).toEqual({
      socket: '/a',
      timeoutMs: 250,
      liveness: true,
    });
  });

  it('rejects bad values and unknown flags', () => {
    expect(() => parseProbeArgs(['--timeout', '1.5'], {})).toThrow('--timeout must be a whole number');
    expect(() => parseProbeArgs(['--timeout', '0'], {})).toThrow('between 1 and 60000');
    expect(() => parseProbeArgs(['--socket'], {})).toThrow('--socket needs a value');
    expect(() => parseProbeArgs(['--ready'], {})).toThrow('unknown argument "--ready"');
  });
});

describe('probe', () => {
  it('is ready only when ipamd says ready', async () => {
    health = async () => ({ ready: true, freeAddresses: 9 });
    expect(await probe({ socket: sockPath, timeoutMs: 1000, liveness: false })).toEqual({
      code: 0,
      message: 'ipamd ready (9 free addresses)',
    });
    health = async () => ({ ready: false, reason: 'reconciling with IMDS', freeAddresses: 0 });
    expect(await probe({ socket: sockPath, timeoutMs: 1000, liveness: false })).toEqual({
      code: 1,
      message: 'ipamd not ready: reconciling with IMDS',
    });
  });

  it('liveness passes while not ready or answering with an error, fails when unreachable', async () => {
    health = async () => ({ ready: false, reason: 'pool empty', freeAddresses: 0 });
    expect((await probe({ socket: sockPath, timeoutMs: 1000, liveness: true })).code).toBe(0);
    health = async () => {
      throw new ProtocolError('not_ready', 'shutting down');
    };
    expect((await probe({ socket: sockPath, timeoutMs: 1000, liveness: true })).code).toBe(0);
    expect((await probe({ socket: sockPath, timeoutMs: 1000, liveness: false })).code).toBe(1);
    const gone = await probe({ socket: join(dir, 'none.sock'), timeoutMs: 1000, liveness: true });
    expect(gone.code).toBe(1);
    expect(gone.message).toContain(`cannot reach ipamd at ${join(dir, 'none.sock')}: ENOENT`);
  });

  it('fails on a daemon that accepts but never answers, within the timeout', async () => {
    const hung: Server = createServer(() => {});
    const hungPath = join(dir, 'hung.sock');
    await new Promise<void>((r) => hung.listen(hungPath, r));
    try {
      const t0 = Date.now();
      const out = await probe({ socket: hungPath, timeoutMs: 150, liveness: true });
      expect(out).toEqual({ code: 1, message: `ipamd at ${hungPath} did not answer within 150 ms` });
      expect(Date.now() - t0).toBeLessThan(1000);
    } finally {
      hung.close();
    }
  });
});

describe('client', () => {
  it('surfaces the daemon error body', async () => {
    health = async () => {
      throw new ProtocolError('pool_empty', 'growing');
    };
    const err = await ipamdRequest(sockPath, { v: 1, op: 'health' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpamdError);
    expect((err as IpamdError).body).toEqual({ code: 'pool_empty', message: 'growing' });
  });
});

describe('bundled probe (dist/ipamd-probe.mjs shape)', () => {
  it('exits 0 when ready, 1 with the reason on stderr when not', async () => {
    health = async () => ({ ready: true, freeAddresses: 3 });
    const ok = await runProbe(['--socket', sockPath]);
    expect(ok).toMatchObject({ code: 0, stdout: 'ipamd ready (3 free addresses)\n' });

    health = async () => ({ ready: false, reason: 'no ENI yet', freeAddresses: 0 });
    const notReady = await runProbe([], { IPAMD_SOCKET_PATH: sockPath });
    expect(notReady).toMatchObject({ code: 1, stderr: 'ipamd not ready: no ENI yet\n' });

    const bad = await runProbe(['--bogus']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('unknown argument "--bogus"');
  });
});
