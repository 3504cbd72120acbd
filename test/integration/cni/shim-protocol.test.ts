/**
 * The native shim against a scripted ipamd socket (no namespaces): what it forwards (CNI_* only,
 * stdin byte for byte), how it finds the socket in the netconf, and what it does with each kind of
 * answer: the frame is copied out with its exit code, an error line means "exec the Node plugin",
 * no answer at all means "try again later" (11). CNI_COMMAND=VERSION tells the two paths apart: the
 * scripted ipamd answers it with a marker, the Node plugin with the real VERSION document.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_NETCONF_BYTES } from '../../../cni/netconf.js';
import { cniFrame } from '../../../lib/protocol/ipamd.js';
import { REPO } from './harness.js';

const SHIM = resolve(REPO, 'dist/aws-cni');
const MARKER = '{"from":"scripted ipamd"}\n';

let dir: string;
let sock: string;
let server: Server;
let requests: Record<string, unknown>[] = [];
/** What the scripted ipamd sends back for the next requests. */
let answer: (line: string) => string | null = () => cniFrame({ exitCode: 3, stdout: MARKER });

function runShim(stdin: string, env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string }>((done, fail) => {
    const child = spawn(SHIM, [], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_COMMAND: 'VERSION', ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? -1, stdout }));
    // A shim that refuses an oversized netconf exits before reading it all (as Go's exec, ignore EPIPE).
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

const conf = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'aws-cni', ipamdSocket: sock, ...over });

describe.skipIf(!existsSync(SHIM))('the native shim and its protocol', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vpccni-shim-'));
    sock = join(dir, 'ipamd.sock');
    server = createServer((c) => {
      let buf = '';
      c.on('data', (d) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        requests.push(JSON.parse(line) as Record<string, unknown>);
        const reply = answer(line);
        if (reply === null) c.destroy();
        else c.end(reply);
      });
      c.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(sock, r));
  });

  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    requests = [];
    answer = () => cniFrame({ exitCode: 3, stdout: MARKER });
  });

  it('forwards the CNI_* environment and stdin exactly, and copies out the answer and exit code', async () => {
    const stdin = conf({ note: 'tab\tquote" back\\slash nl\n ctl\u0001 é ✓' });
    const r = await runShim(stdin, { CNI_ARGS: 'K8S_POD_NAME=a;X="y"', FOO: 'bar', CNIX: 'no' });
    expect(r).toEqual({ code: 3, stdout: MARKER });
    expect(requests).toHaveLength(1);
    expect(requests[0]).toEqual({
      v: 1,
      op: 'cni',
      env: { CNI_COMMAND: 'VERSION', CNI_ARGS: 'K8S_POD_NAME=a;X="y"' },
      stdin,
    });
  });

  it('exits 0 with no output when the plugin printed nothing', async () => {
    answer = () => cniFrame({ exitCode: 0, stdout: '' });
    expect(await runShim(conf())).toEqual({ code: 0, stdout: '' });
  });

  it('uses the top-level ipamdSocket, not one nested deeper', async () => {
    const stdin = JSON.stringify({
      prevResult: { ipamdSocket: '/nonexistent/x.sock', list: [{ ipamdSocket: '/nope' }] },
      cniVersion: '1.0.0',
      ipamdSocket: sock,
    });
    expect(await runShim(stdin)).toEqual({ code: 3, stdout: MARKER });
  });

  it.each([
    ['an escaped key', `{"cniVersion":"1.0.0","ipamd\\u0053ocket":"${sock}"}`],
    ['a duplicate key', `{"cniVersion":"1.0.0","ipamdSocket":"${sock}","ipamdSocket":"${sock}"}`],
    ['a relative path', conf({ ipamdSocket: 'ipamd.sock' })],
    ['a non-string value', conf({ ipamdSocket: ['x'] })],
    ['an escaped value', conf({ ipamdSocket: `${dir}/\u00e9\\"x` })],
  ])('falls back to the Node plugin on %s', async (_what, stdin) => {
    const r = await runShim(stdin);
    expect(requests).toHaveLength(0);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '1.0.0', supportedVersions: expect.any(Array) });
  });

  it('falls back to the Node plugin, stdin intact, when ipamd answers with an error line', async () => {
    answer = () => `${JSON.stringify({ v: 1, ok: false, error: { code: 'bad_request', message: 'no' } })}\n`;
    const r = await runShim(conf({ cniVersion: '0.4.0' }));
    expect(requests).toHaveLength(1);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ cniVersion: '0.4.0' });
  });

  it('answers 11 when ipamd took the call but sent nothing back or a broken frame', async () => {
    answer = () => null;
    let r = await runShim(conf());
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, msg: 'ipamd did not answer the CNI call' });
    answer = () => '{"v":1,"ok":true,"result":{"exitCode":x}}\n';
    r = await runShim(conf());
    expect(JSON.parse(r.stdout)).toMatchObject({ code: 11, details: 'ipamd sent a malformed CNI frame' });
  });

  it("refuses a netconf over the plugin's limit with code 7, without forwarding it or starting Node", async () => {
    const huge = conf({ padding: 'x'.repeat(2 * 1024 * 1024) });
    const started = performance.now();
    const r = await runShim(huge, { CNI_COMMAND: 'ADD' });
    expect(requests).toHaveLength(0);
    expect(r.code).toBe(1);
    // The same answer as the Node plugin's, with the same limit.
    expect(JSON.parse(r.stdout)).toMatchObject({
      code: 7,
      msg: 'network configuration is too large',
      details: `stdin holds more than ${MAX_NETCONF_BYTES} bytes, the most this plugin reads`,
    });
    // The Node plugin (about 100 ms to start) never ran: the shim answered by itself.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('sends the errno instead of a socket when CNI_NETNS cannot be opened, and nothing for other commands', async () => {
    await runShim(conf(), { CNI_COMMAND: 'ADD', CNI_NETNS: join(dir, 'no-such-netns') });
    await runShim(conf(), { CNI_COMMAND: 'DEL', CNI_NETNS: dir }); // a directory: no namespace
    await runShim(conf(), { CNI_COMMAND: 'STATUS', CNI_NETNS: join(dir, 'no-such-netns') });
    expect(requests.map((r) => [r.netnsErrno, r.netnsFd])).toEqual([
      ['ENOENT', undefined],
      ['EINVAL', undefined],
      [undefined, undefined],
    ]);
  });
});
