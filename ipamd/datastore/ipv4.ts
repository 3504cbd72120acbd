/** Small IPv4 arithmetic: enough for prefixes, subnet membership and gateways, without a dependency. */

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`${JSON.stringify(ip)} is not an IPv4 address`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255)
      throw new Error(`${JSON.stringify(ip)} is not an IPv4 address`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  base: number;
  bits: number;
}

export function parseCidr(cidr: string): Cidr {
  const [ip, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (ip === undefined || !/^\d{1,2}$/.test(bitsText ?? '') || bits > 32) {
    throw new Error(`${JSON.stringify(cidr)} is not an IPv4 CIDR`);
  }
  const size = 2 ** (32 - bits);
  const base = Math.floor(ipToInt(ip) / size) * size;
  return { base, bits };
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const n = ipToInt(ip);
  return n >= c.base && n < c.base + 2 ** (32 - c.bits);
}

/** Every address of a (small) prefix, e.g. the 16 of a /28. */
export function expandPrefix(cidr: string): string[] {
  const c = parseCidr(cidr);
  if (c.bits < 24) throw new Error(`refusing to expand ${cidr}: larger than a /24`);
  const out: string[] = [];
  for (let i = 0; i < 2 ** (32 - c.bits); i++) out.push(intToIp(c.base + i));
  return out;
}

/** The VPC router of a subnet is its base address + 1. */
export function subnetGateway(cidr: string): string {
  return intToIp(parseCidr(cidr).base + 1);
}
