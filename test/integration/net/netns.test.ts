import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLONE_NEWNET, inNetns, netnsInode, netnsPath, setns } from '../../../lib/net/netns.js';
import { NetnsFixture } from './helpers.js';

const fx = new NetnsFixture();
let nsA: string;
let nsB: string;

beforeAll(() => {
  nsA = fx.add('a');
  nsB = fx.add('b');
});
afterAll(() => fx.cleanup());

describe('netnsPath', () => {
  it('maps a name to /var/run/netns', () => {
    expect(netnsPath('cni-1234')).toBe('/var/run/netns/cni-1234');
  });
  it.each(['', '../etc', 'a/b', '..', 'x y'])('rejects %j', (bad) => {
    expect(() => netnsPath(bad)).toThrow(/invalid network namespace name/);
  });
});

describe('inNetns', () => {
  it('runs fn inside the namespace and returns its result, then switches back', () => {
    const home = netnsInode();
    const target = netnsInode(netnsPath(nsA));
    expect(target).not.toBe(home);
    const seen = inNetns(netnsPath(nsA), () => netnsInode());
    expect(seen).toBe(target);
    expect(netnsInode()).toBe(home);
  });

  it('nests: inner switch returns to the outer namespace', () => {
    const [inner, afterInner] = inNetns(netnsPath(nsA), () => [
      inNetns(netnsPath(nsB), () => netnsInode()),
      netnsInode(),
    ]);
    expect(inner).toBe(netnsInode(netnsPath(nsB)));
    expect(afterInner).toBe(netnsInode(netnsPath(nsA)));
  });

  it('switches back when fn throws and rethrows the same error', () => {
    const home = netnsInode();
    const boom = new Error('boom');
    expect(() =>
      inNetns(netnsPath(nsA), () => {
        throw boom;
      }),
    ).toThrow(boom);
    expect(netnsInode()).toBe(home);
  });

  it('refuses async functions before running them', () => {
    let ran = false;
    const fn = async () => {
      ran = true;
    };
    expect(() => inNetns(netnsPath(nsA), fn as unknown as () => void)).toThrow(/must be synchronous/);
    expect(ran).toBe(false);
  });

  it('refuses a function that returns a Promise, after switching back', () => {
    const home = netnsInode();
    expect(() => inNetns(netnsPath(nsA), () => Promise.resolve(1))).toThrow(/returned a Promise/);
    // A rejection of the refused promise must not surface as an unhandled rejection.
    expect(() => inNetns(netnsPath(nsA), () => Promise.reject(new Error('late')))).toThrow(
      /returned a Promise/,
    );
    expect(netnsInode()).toBe(home);
  });

  it('reports a missing namespace with ENOENT and a non-namespace path with EINVAL', () => {
    expect(() => inNetns(netnsPath(`${nsA}-missing`), () => 1)).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no such namespace/) }),
    );
    expect(() => inNetns('/etc/hostname', () => 1)).toThrow(
      expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/not a network namespace/) }),
    );
  });

  it('keeps a socket created inside in that namespace after switching back', async () => {
    // listen(0) without a host binds synchronously, so the socket is created while switched.
    const server: Server = inNetns(netnsPath(nsA), () => createServer().listen(0));
    try {
      const { port } = server.address() as AddressInfo;
      const listening = (ns: string) =>
        execFileSync('ip', ['netns', 'exec', ns, 'ss', '-Hltn', `sport = :${port}`], { encoding: 'utf8' });
      expect(listening(nsA)).toContain(`:${port}`);
      expect(listening(nsB)).not.toContain(`:${port}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('setns addon', () => {
  it('throws EBADF with errno details for a bad fd', () => {
    expect(() => setns(987654, CLONE_NEWNET)).toThrow(
      expect.objectContaining({ code: 'EBADF', errno: 9, syscall: 'setns' }),
    );
  });

  it('throws EINVAL when the fd is not a namespace of the requested type', () => {
    const fd = openSync('/etc/hostname', 'r');
    try {
      expect(() => setns(fd, CLONE_NEWNET)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      closeSync(fd);
    }
  });

  it('rejects non-number arguments', () => {
    expect(() => setns('3' as unknown as number, CLONE_NEWNET)).toThrow(/fd must be a number/);
  });
});
