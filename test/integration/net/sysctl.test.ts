// How /proc/sys/net behaves across namespaces, and that readSysctl/writeSysctl act where asked.
import { closeSync, openSync, readSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns, netnsPath, openRtnl } from '../../../lib/net/index.js';
import { readSysctl, sysctlPath, writeSysctl } from '../../../lib/net/sysctl.js';
import { NetnsFixture, readSysctlIn } from './helpers.js';

const fx = new NetnsFixture();
let a: string;
let b: string;

beforeAll(async () => {
  a = fx.add('a');
  b = fx.add('b');
  const nl = openRtnl(netnsPath(a));
  try {
    await nl.createVeth({ name: 'sysv0', peerName: 'sysv1' });
  } finally {
    nl.close();
  }
});
afterAll(() => fx.cleanup());

describe('sysctlPath', () => {
  it('accepts dotted and path forms, with "/" for "." inside dotted keys (sysctl(8))', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('net/ipv4/ip_forward');
    expect(sysctlPath('net.ipv4.conf.eth0/100.rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter');
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter');
  });
  it.each(['', 'net/../../etc/passwd', 'net/ipv4/ip forward', 'net//x'])('rejects %j', (k) => {
    expect(() => sysctlPath(k)).toThrow(TypeError);
  });
});

describe('inside a namespace', () => {
  it('writes only the target namespace (checked with ip netns exec sysctl)', () => {
    const hostBefore = readSysctl('net.ipv4.ip_forward');
    writeSysctl('net.ipv4.ip_forward', 1, netnsPath(a));
    expect(readSysctlIn(a, 'net.ipv4.ip_forward')).toBe('1');
    expect(readSysctlIn(b, 'net.ipv4.ip_forward')).toBe('0');
    expect(readSysctl('net.ipv4.ip_forward')).toBe(hostBefore);
    expect(readSysctl('net.ipv4.ip_forward', netnsPath(a))).toBe('1');
    writeSysctl('net/ipv4/ip_forward', '0', netnsPath(a));
    expect(readSysctlIn(a, 'net.ipv4.ip_forward')).toBe('0');
  });

  it('resolves against the opening task: an fd opened inside keeps reading that namespace', () => {
    writeSysctl('net.ipv4.conf.all.rp_filter', 2, netnsPath(a));
    const fd = inNetns(netnsPath(a), () => openSync('/proc/sys/net/ipv4/conf/all/rp_filter', 'r'));
    try {
      const buf = Buffer.alloc(16);
      const n = readSync(fd, buf, 0, buf.length, 0);
      expect(buf.toString('utf8', 0, n).trim()).toBe('2');
    } finally {
      closeSync(fd);
    }
    expect(readSysctlIn(b, 'net.ipv4.conf.all.rp_filter')).not.toBe('2');
  });

  it('sees per-device keys only in the device namespace', () => {
    writeSysctl('net.ipv4.conf.sysv0.rp_filter', 0, netnsPath(a));
    writeSysctl('net.ipv4.conf.sysv0.proxy_arp', 1, netnsPath(a));
    expect(readSysctlIn(a, 'net.ipv4.conf.sysv0.proxy_arp')).toBe('1');
    expect(() => readSysctl('net.ipv4.conf.sysv0.proxy_arp', netnsPath(b))).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no such key/) }),
    );
  });

  it('refuses keys that are not per network namespace', () => {
    expect(() => writeSysctl('kernel.hostname', 'x', netnsPath(a))).toThrow(/only net\.\* keys/);
  });

  it('reports kernel-rejected values and missing namespaces', () => {
    expect(() => writeSysctl('net.ipv4.ip_forward', 'notanumber', netnsPath(a))).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(() => readSysctl('net.ipv4.ip_forward', netnsPath(`${a}-gone`))).toThrow(
      expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/open netns/) }),
    );
  });
});
