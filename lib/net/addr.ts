// Parsing and formatting of IP addresses, prefixes and MAC addresses for netlink attributes.
import { closeSync, openSync, readSync } from 'node:fs';
import { AF_INET, AF_INET6 } from './nlmsg.js';

export interface IpBytes {
  family: typeof AF_INET | typeof AF_INET6;
  bytes: Buffer;
}
export interface Prefix extends IpBytes {
  prefixLen: number;
}

// Own parsers instead of node:net's isIP*: importing node:net costs ~10 ms on every plugin start.
const V4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HEX_GROUP_RE = /^[0-9a-f]{1,4}$/i;

export function parseIp(s: string, what = 'IP address'): IpBytes {
  if (typeof s === 'string') {
    if (V4_RE.test(s)) return { family: AF_INET, bytes: Buffer.from(s.split('.').map(Number)) };
    const v6 = s.includes(':') ? ipv6Bytes(s) : undefined;
    if (v6) return { family: AF_INET6, bytes: v6 };
  }
  throw new TypeError(`invalid ${what} ${JSON.stringify(s)}: expected an IPv4 or IPv6 address`);
}

/** IPv6 text (RFC 4291 forms, optional trailing dotted quad) to 16 bytes; undefined if malformed. */
function ipv6Bytes(s: string): Buffer | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const split = (t: string) => (t === '' ? [] : t.split(':'));
  const head = split(halves[0]!);
  const tail = halves.length === 2 ? split(halves[1]!) : [];
  const groups = [...head, ...tail];
  // A trailing a.b.c.d stands for the last two groups.
  const last = groups[groups.length - 1];
  const quad: number[] = [];
  if (last?.includes('.')) {
    if (!V4_RE.test(last)) return undefined;
    quad.push(...last.split('.').map(Number));
    (tail.length ? tail : head).pop();
  }
  const n = head.length + tail.length + (quad.length ? 2 : 0);
  if (halves.length === 2 ? n > 7 : n !== 8) return undefined;
  if (![...head, ...tail].every((g) => HEX_GROUP_RE.test(g))) return undefined;
  const out = Buffer.alloc(16);
  head.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  const tailStart = 8 - tail.length - (quad.length ? 2 : 0);
  tail.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), (tailStart + i) * 2);
  });
  if (quad.length) Buffer.from(quad).copy(out, 12);
  return out;
}

/** "10.0.0.0/16", "10.0.0.5" (host prefix) or "default" (0.0.0.0/0). */
export function parsePrefix(s: string, what = 'prefix', defaultFamily: number = AF_INET): Prefix {
  if (s === 'default' || s === 'all' || s === 'any') {
    return defaultFamily === AF_INET6
      ? { family: AF_INET6, bytes: Buffer.alloc(16), prefixLen: 0 }
      : { family: AF_INET, bytes: Buffer.alloc(4), prefixLen: 0 };
  }
  if (typeof s !== 'string')
    throw new TypeError(`invalid ${what} ${JSON.stringify(s)}: expected "a.b.c.d/len"`);
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash), what);
  const max = ip.bytes.length * 8;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1);
  const prefixLen = /^\d{1,3}$/.test(lenText) ? Number(lenText) : Number.NaN;
  if (!(prefixLen >= 0 && prefixLen <= max)) {
    throw new TypeError(`invalid ${what} ${JSON.stringify(s)}: prefix length must be 0-${max}`);
  }
  return { ...ip, prefixLen };
}

export function formatIp(bytes: Buffer | undefined, family?: number): string | undefined {
  if (!bytes) return undefined;
  if (bytes.length === 4 && family !== AF_INET6) return [...bytes].join('.');
  if (bytes.length !== 16) return bytes.toString('hex');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function formatPrefix(bytes: Buffer | undefined, len: number, family: number): string {
  if (!bytes) return len === 0 ? 'default' : `?/${len}`;
  return `${formatIp(bytes, family)}/${len}`;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function parseMac(s: string): Buffer {
  if (typeof s !== 'string' || !MAC_RE.test(s)) {
    throw new TypeError(
      `invalid MAC address ${JSON.stringify(s)}: expected six hex pairs like 0a:1b:2c:3d:4e:5f`,
    );
  }
  return Buffer.from(s.replaceAll(':', ''), 'hex');
}

export function formatMac(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * A random unicast, locally administered MAC (never a vendor's address). Read from /dev/urandom
 * rather than node:crypto, whose loading would cost every plugin start time.
 */
export function randomMac(): string {
  const b = Buffer.alloc(6);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, b, 0, 6, null);
  } finally {
    closeSync(fd);
  }
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
