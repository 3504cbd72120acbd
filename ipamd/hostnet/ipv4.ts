/** IPv4 address/CIDR helpers for host networking (validation with messages that name the input). */

export function ipv4ToInt(ip: string, what = 'IPv4 address'): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(p))) {
    throw new Error(`invalid ${what} "${ip}": expected a dotted quad like 10.0.1.5`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Ipv4Cidr {
  /** Network address (host bits cleared). */
  network: string;
  prefixLen: number;
  /** Canonical "network/len". */
  cidr: string;
}

/** Parses "a.b.c.d/len"; host bits must be zero so a typo does not silently widen a rule. */
export function parseIpv4Cidr(value: string, what = 'CIDR'): Ipv4Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(value.trim());
  if (!m) throw new Error(`invalid ${what} "${value}": expected a.b.c.d/len`);
  const base = ipv4ToInt(m[1]!, what);
  const prefixLen = Number(m[2]);
  if (prefixLen > 32) throw new Error(`invalid ${what} "${value}": prefix length must be 0-32`);
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  if ((base & ~mask) >>> 0 !== 0) {
    throw new Error(
      `invalid ${what} "${value}": host bits are set (did you mean ${intToIpv4((base & mask) >>> 0)}/${prefixLen}?)`,
    );
  }
  const network = intToIpv4(base);
  return { network, prefixLen, cidr: `${network}/${prefixLen}` };
}

/** The VPC router is the subnet's network address + 1. */
export function subnetGateway(subnet: Ipv4Cidr): string {
  return intToIpv4(ipv4ToInt(subnet.network) + 1);
}

export function cidrContains(subnet: Ipv4Cidr, ip: string): boolean {
  const mask = subnet.prefixLen === 0 ? 0 : (0xffffffff << (32 - subnet.prefixLen)) >>> 0;
  return (ipv4ToInt(ip) & mask) >>> 0 === ipv4ToInt(subnet.network);
}

export function normalizeMac(mac: string, what = 'MAC address'): string {
  const m = mac.trim().toLowerCase();
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)) {
    throw new Error(`invalid ${what} "${mac}": expected six hex octets like 02:ab:cd:ef:01:23`);
  }
  return m;
}
