import { describe, expect, it } from 'vitest';
import { formatIp, formatMac, parseIp, parseMac, parsePrefix } from '../../../lib/net/addr.js';
import { errnoName, hasCode, NetlinkError } from '../../../lib/net/errors.js';
import { scopeNumber, tableNumber } from '../../../lib/net/rtnames.js';
import { sysctlPath } from '../../../lib/net/sysctl.js';

describe('addresses', () => {
  it('parses IPv4 prefixes, host addresses and default', () => {
    expect(parsePrefix('10.1.0.0/16')).toMatchObject({
      family: 2,
      prefixLen: 16,
      bytes: Buffer.from([10, 1, 0, 0]),
    });
    expect(parsePrefix('10.0.0.5')).toMatchObject({ prefixLen: 32 });
    expect(parsePrefix('default')).toMatchObject({ family: 2, prefixLen: 0 });
  });
  it.each(['10.0.0.0/33', '10.0.0/8', '10.0.0.0/x', '10.0.0.0/', 'fd00::/129', ''])('rejects %j', (s) => {
    expect(() => parsePrefix(s)).toThrow(TypeError);
  });
  it('round-trips IPv6 including compression and embedded IPv4', () => {
    for (const s of [
      'fd00::2',
      '::1',
      '::',
      'fe80::fc:ff:fe00:1',
      '2001:db8:0:1:0:0:0:1',
      '1:2:3:4:5:6:7:8',
    ]) {
      const { bytes, family } = parseIp(s);
      expect(family).toBe(10);
      expect(parseIp(formatIp(bytes, family)!).bytes).toEqual(bytes);
    }
    expect(formatIp(parseIp('2001:db8:0:1:0:0:0:1').bytes)).toBe('2001:db8:0:1::1');
    expect(formatIp(parseIp('::ffff:10.1.2.3').bytes)).toBe('::ffff:a01:203');
  });
  it('parses and formats MACs', () => {
    expect(formatMac(parseMac('0A:58:0a:00:00:01'))).toBe('0a:58:0a:00:00:01');
    expect(() => parseMac('0a:58:0a:00:00')).toThrow(/invalid MAC address/);
  });
});

describe('names and errors', () => {
  it('maps scopes and tables, rejecting unknown ones', () => {
    expect(scopeNumber('link')).toBe(253);
    expect(tableNumber('main')).toBe(254);
    expect(tableNumber(100000)).toBe(100000);
    expect(() => tableNumber(0)).toThrow(/invalid route table 0/);
    expect(() => scopeNumber('galaxy' as never)).toThrow(/invalid scope/);
  });
  it('formats NetlinkError as "<op>: <strerror> (<ERRNO>)"', () => {
    const e = NetlinkError.fromErrno('delete route 10.0.0.0/8', 3);
    expect(e.message).toBe('delete route 10.0.0.0/8: No such process (ESRCH)');
    expect(hasCode(e, 'ESRCH', 'ENOENT')).toBe(true);
    expect(hasCode(new Error('x'), 'ESRCH')).toBe(false);
    expect(errnoName(19)).toBe('ENODEV');
  });
  it('normalises sysctl keys', () => {
    expect(sysctlPath('net.ipv4.conf.eth0/100.rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter');
  });
});

describe('address validation', () => {
  it.each([
    '1.2.3',
    '1.2.3.256',
    '01.2.3.4',
    '1.2.3.4 ',
    'fd00:::1',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    'g::1',
    '::1.2.3',
  ])('rejects %j', (s) => {
    expect(() => parseIp(s)).toThrow(/invalid IP address/);
  });
  it('accepts the IPv6 forms', () => {
    expect(formatIp(parseIp('::ffff:1.2.3.4').bytes)).toBe('::ffff:102:304');
    expect(formatIp(parseIp('1:2:3:4:5:6:1.2.3.4').bytes)).toBe('1:2:3:4:5:6:102:304');
    expect(formatIp(parseIp('fd00::').bytes)).toBe('fd00::');
    expect(formatIp(parseIp('1:2:3:4:5:6:7::').bytes)).toBe('1:2:3:4:5:6:7:0');
  });
});
