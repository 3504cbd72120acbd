import { describe, expect, it } from 'vitest';
import { CniError, errorJson } from '../../../cni/errors.js';
import { appendResult, formatResult, type Result } from '../../../cni/result.js';

const ours: Result = {
  interfaces: [
    { name: 'enic440f455693', mac: '02:aa:bb:cc:dd:ee' },
    { name: 'eth0', mac: '02:11:22:33:44:55', mtu: 9001, sandbox: '/var/run/netns/p1' },
  ],
  ips: [{ address: '10.0.1.5/32', interface: 1 }],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
  dns: {},
};

describe('formatResult', () => {
  it('1.1.0 carries the interface MTU and no ip version', () => {
    expect(formatResult(ours, '1.1.0')).toEqual({
      cniVersion: '1.1.0',
      interfaces: [
        { name: 'enic440f455693', mac: '02:aa:bb:cc:dd:ee' },
        { name: 'eth0', mac: '02:11:22:33:44:55', mtu: 9001, sandbox: '/var/run/netns/p1' },
      ],
      ips: [{ address: '10.0.1.5/32', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: {},
    });
  });

  it('1.0.0 has no interface MTU', () => {
    const out = formatResult(ours, '1.0.0') as {
      interfaces: Record<string, unknown>[];
      ips: Record<string, unknown>[];
    };
    expect(out.interfaces[1]).toEqual({
      name: 'eth0',
      mac: '02:11:22:33:44:55',
      sandbox: '/var/run/netns/p1',
    });
    expect(out.ips[0]).toEqual({ address: '10.0.1.5/32', interface: 1 });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0'] as const)('%s tags each ip with its version', (v) => {
    const out = formatResult(ours, v) as { cniVersion: string; ips: Record<string, unknown>[] };
    expect(out.cniVersion).toBe(v);
    expect(out.ips).toEqual([{ version: '4', address: '10.0.1.5/32', interface: 1 }]);
  });
});

describe('appendResult (chaining)', () => {
  it('passes the previous result through and re-bases interface indexes', () => {
    const prev: Result = {
      interfaces: [{ name: 'lo0', sandbox: '/var/run/netns/p1' }],
      ips: [{ address: '192.168.0.2/24', interface: 0 }],
      routes: [{ dst: '192.168.0.0/16' }],
      dns: { nameservers: ['10.0.0.2'] },
    };
    const merged = appendResult(prev, ours);
    expect(merged.interfaces.map((i) => i.name)).toEqual(['lo0', 'enic440f455693', 'eth0']);
    expect(merged.ips).toEqual([
      { address: '192.168.0.2/24', interface: 0 },
      { address: '10.0.1.5/32', interface: 2 },
    ]);
    expect(merged.routes).toHaveLength(2);
    expect(merged.dns).toEqual({ nameservers: ['10.0.0.2'] });
  });

  it('returns ours unchanged without a previous result', () => {
    expect(appendResult(undefined, ours)).toBe(ours);
  });
});

describe('errorJson', () => {
  it('has the spec fields', () => {
    expect(
      errorJson('1.0.0', new CniError(11, 'ipamd is not running on this node', 'socket /x: ENOENT')),
    ).toEqual({
      cniVersion: '1.0.0',
      code: 11,
      msg: 'ipamd is not running on this node',
      details: 'socket /x: ENOENT',
    });
  });
  it('wraps unexpected errors as 999 with their message', () => {
    expect(errorJson('1.1.0', new Error('boom'))).toMatchObject({ code: 999, details: 'boom' });
  });
});
