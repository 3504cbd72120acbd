/**
 * IPv4 arithmetic for the EC2 model: addresses as unsigned 32-bit numbers, CIDR parsing.
 *
 * Exports: parseIpv4(text) -> number, formatIpv4(n) -> string, parseCidr(text) -> Cidr,
 * formatCidr(c), cidrContains(c, ip), cidrsOverlap(a, b).
 * Every parser throws a plain Error naming the bad input; callers turn it into an EC2 error code.
 */

export interface Cidr {
  /** First address, as an unsigned 32-bit number (host bits are zero). */
  base: number;
  prefixLength: number;
  /** Number of addresses in the block. */
  size: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses dotted-quad IPv4 text strictly (no leading zeros, exactly four octets). */
export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) {
    throw new Error(`'${text}' is not an IPv4 address`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function isIpv4(text: string): boolean {
  try {
    parseIpv4(text);
    return true;
  } catch {
    return false;
  }
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses `a.b.c.d/len`; the address must be the block's first address (as EC2 requires). */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`'${text}' is not a CIDR block (expected a.b.c.d/len)`);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(lenText) || Number(lenText) > 32) {
    throw new Error(`'${text}' has an invalid prefix length`);
  }
  const prefixLength = Number(lenText);
  const base = parseIpv4(text.slice(0, slash));
  const size = 2 ** (32 - prefixLength);
  if (base % size !== 0) {
    throw new Error(`'${text}' has host bits set (the block starts at ${formatIpv4(base - (base % size))})`);
  }
  return { base, prefixLength, size };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefixLength}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + c.size;
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  return inner.base >= outer.base && inner.base + inner.size <= outer.base + outer.size;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}
