// vpc-cni's socket is not the AWS VPC CNI's ipamd.sock: a listener still on the reference's path, our
// socket configured under that name, and a gRPC/HTTP client dialling ours each get one clear log line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkReferenceSocket } from '../../../../ipamd/server/reference-socket.js';
import { DEFAULT_SOCKET_PATH, ProtocolError, parseRequest } from '../../../../lib/protocol/ipamd.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

let dir: string;
const servers: Server[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'refsock-'));
});
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function listen(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.end());
    servers.push(s);
    s.listen(path, () => resolve(s));
  });
}

describe('the reference socket name', () => {
  it('is not ours: the default is vpc-cni.sock in the reference run directory', () => {
    expect(DEFAULT_SOCKET_PATH).toBe('/var/run/aws-node/vpc-cni.sock');
  });

  it('warns when something still serves ipamd.sock beside our socket', async () => {
    await listen(join(dir, 'ipamd.sock'));
    const { log, lines } = capture();
    expect(await checkReferenceSocket(join(dir, 'vpc-cni.sock'), log)).toBe('served');
    const warn = lines.find((l) => l.level === 40);
    expect(warn?.msg).toMatch(/another program serves .*ipamd\.sock .*AWS VPC CNI's ipamd still running/);
  });

  it('only notes a stale ipamd.sock nobody listens on, and says nothing when there is none', async () => {
    // A listener killed outright leaves its socket file behind, as a crashed aws-node does.
    const stale = join(dir, 'ipamd.sock');
    spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    const { log, lines } = capture();
    expect(await checkReferenceSocket(join(dir, 'vpc-cni.sock'), log)).toBe('stale');
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[30, expect.stringMatching(/stale ipamd\.sock/)]]);
    const none = capture();
    expect(await checkReferenceSocket(join(dir, 'sub', 'vpc-cni.sock'), none.log)).toBe('none');
    expect(none.lines).toEqual([]);
  });

  it('warns when our socket is configured under the reference name', async () => {
    const { log, lines } = capture();
    await checkReferenceSocket(join(dir, 'ipamd.sock'), log);
    expect(lines[0]?.msg).toMatch(/IPAMD_SOCKET_PATH uses the name the AWS VPC CNI serves its gRPC API on/);
  });

  it('tells a gRPC (HTTP/2) or HTTP client it dialled the wrong socket', () => {
    const h2 = 'PRI * HTTP/2.0\r';
    expect(() => parseRequest(h2)).toThrow(ProtocolError);
    expect(() => parseRequest(h2)).toThrow(/speaks gRPC \(HTTP\/2\).*AWS VPC CNI's gRPC API/);
    expect(() => parseRequest('GET /v1/enis HTTP/1.1\r')).toThrow(/speaks HTTP\/1/);
    expect(() => parseRequest('{not json')).toThrow(/not valid JSON/);
  });
});
