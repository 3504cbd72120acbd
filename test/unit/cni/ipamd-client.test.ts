import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniError } from '../../../cni/errors.js';
import { checkAdd, checkDel, IpamdClient, IpamdUnreachable } from '../../../cni/ipamd-client.js';
import { errorLine, okLine, parseRequest } from '../../../lib/protocol/ipamd.js';

const dir = mkdtempSync(join(tmpdir(), 'vpccni-client-'));
const goodAdd = {
  address: '10.0.1.5',
  eniId: 'eni-1',
  deviceNumber: 1,
  routeTable: 2,
  subnetCidr: '10.0.1.0/24',
  vpcCidrs: ['10.0.0.0/16'],
  snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
  mtu: 9001,
  vethPrefix: 'eni',
  hostVethMac: '02:11:22:33:44:55',
};

/** A one-shot responder: answers every request line with `answer(request)` (a raw line). */
function serve(
  name: string,
  answer: (line: string) => string | null,
): Promise<{ path: string; server: Server }> {
  const path = join(dir, name);
  const server = createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const out = answer(buf.slice(0, nl));
      if (out === null) sock.end();
      else if (out !== '') sock.end(out);
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ path, server })));
}

const servers: Server[] = [];
let ok: string;
let pool: string;
let full: string;
let garbage: string;
let silent: string;
let hangup: string;
let invalid: string;
let seen: string[] = [];

beforeAll(async () => {
  const reg = async (name: string, answer: (line: string) => string | null) => {
    const s = await serve(name, answer);
    servers.push(s.server);
    return s.path;
  };
  ok = await reg('ok.sock', (line) => {
    seen.push(line);
    const req = parseRequest(line);
    if (req.op === 'add') return okLine(goodAdd);
    if (req.op === 'del') return okLine({ address: null, deviceNumber: null, routeTable: null });
    if (req.op === 'gc') return okLine({ released: [] });
    return okLine({ ready: true, freeAddresses: 3 });
  });
  pool = await reg('pool.sock', () => errorLine('pool_empty', 'no free address; attaching eni-2'));
  full = await reg('full.sock', () => errorLine('exhausted', 'max pods 29 reached'));
  garbage = await reg('garbage.sock', () => 'hello\n');
  silent = await reg('silent.sock', () => '');
  hangup = await reg('hangup.sock', () => null);
  invalid = await reg('invalid.sock', () => okLine({ ...goodAdd, address: '10.0.1' }));
});

afterAll(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function failure(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error('expected a failure');
}

const key = { network: 'aws-cni', containerId: 'c1', ifName: 'eth0' };

describe('IpamdClient', () => {
  it('sends one versioned request line and returns the result', async () => {
    seen = [];
    const r = await new IpamdClient({ socketPath: ok }).add({
      ...key,
      netns: '/var/run/netns/p',
      podName: 'web',
    });
    expect(r.address).toBe('10.0.1.5');
    expect(seen).toHaveLength(1);
    expect(JSON.parse(seen[0]!)).toEqual({
      v: 1,
      op: 'add',
      ...key,
      netns: '/var/run/netns/p',
      podName: 'web',
    });
  });

  it('a missing socket is code 11 naming the socket, and marked unreachable', async () => {
    const path = join(dir, 'absent.sock');
    const err = await failure(new IpamdClient({ socketPath: path }).health());
    expect(err).toBeInstanceOf(IpamdUnreachable);
    expect(err.code).toBe(11);
    expect(err.message).toContain('ipamd is not running on this node');
    expect(err.message).toContain(path);
  });

  it('a socket nobody listens on (ECONNREFUSED) is code 11', async () => {
    const path = join(dir, 'stale.sock');
    writeFileSync(path, '');
    const err = await failure(new IpamdClient({ socketPath: path }).health());
    expect(err.code).toBe(11);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('pool_empty is code 11, exhausted is 101', async () => {
    const empty = await failure(new IpamdClient({ socketPath: pool }).add({ ...key, netns: '/n' }));
    expect(empty.code).toBe(11);
    // ipamd's own reason, nothing added (it may be cooling down, not growing).
    expect(empty.details).toBe('no free address; attaching eni-2; the runtime will retry');
    const err = await failure(new IpamdClient({ socketPath: full }).add({ ...key, netns: '/n' }));
    expect(err.code).toBe(101);
    expect(err.message).toContain('max pods 29');
  });

  it('a non-JSON answer is code 100', async () => {
    expect((await failure(new IpamdClient({ socketPath: garbage }).health())).code).toBe(100);
  });

  it('a hang-up without answer is code 11', async () => {
    expect((await failure(new IpamdClient({ socketPath: hangup }).health())).code).toBe(11);
  });

  it('times out waiting for an answer', async () => {
    const err = await failure(new IpamdClient({ socketPath: silent, responseTimeoutMs: 100 }).health());
    expect(err.code).toBe(11);
    expect(err.message).toContain('no answer within 100 ms');
  });

  it('rejects an add result with a malformed address before it reaches netlink', async () => {
    const err = await failure(new IpamdClient({ socketPath: invalid }).add({ ...key, netns: '/n' }));
    expect(err.code).toBe(100);
    expect(err.message).toContain('address');
  });
});

describe('checkAdd', () => {
  it.each([
    [{ routeTable: 0 }, 'routeTable'],
    [{ mtu: 100 }, 'mtu'],
    [{ vethPrefix: 'toolong' }, 'vethPrefix'],
    [{ vpcCidrs: ['10.0.0.0'] }, 'vpcCidrs'],
    [{ snat: {} }, 'snat'],
    [{ hostVethMac: undefined }, 'hostVethMac'],
    [{ hostVethMac: '01:00:5e:00:00:01' }, 'hostVethMac'], // multicast, not locally administered
    [{ hostVethMac: '00:11:22:33:44:55' }, 'hostVethMac'], // a vendor's address
  ])('rejects %j', (over, what) => {
    expect(() => checkAdd({ ...goodAdd, ...over })).toThrow(what);
  });
  it('accepts a good result', () => {
    expect(checkAdd(goodAdd)).toEqual(goodAdd);
  });
});

describe('checkDel', () => {
  const good = {
    address: '10.0.1.5',
    deviceNumber: 1,
    routeTable: 2,
    hostVethMac: '02:11:22:33:44:55',
    heldByOthers: [],
  };
  it('accepts a release and an unknown key', () => {
    expect(checkDel(good)).toEqual(good);
    const unknown = {
      address: null,
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: ['10.0.1.6'],
    };
    expect(checkDel(unknown)).toEqual(unknown);
  });
  it.each([
    [{ heldByOthers: undefined }, 'heldByOthers'],
    [{ heldByOthers: ['x'] }, 'heldByOthers'],
    [{ address: 'x' }, 'address'],
    [{ hostVethMac: 'zz' }, 'hostVethMac'],
  ])('rejects %j', (over, what) => {
    expect(() => checkDel({ ...good, ...over })).toThrow(what);
  });
});
