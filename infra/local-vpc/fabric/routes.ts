/**
 * The router's delivery table: every private IP (/32) and delegated prefix (/28) routes to the
 * router-side veth of the ENI that owns it. Kept as a map destination -> link and changed by diff,
 * so a reassignment between ENIs becomes one `route replace`.
 */

/** Destination in CIDR form (`10.0.1.5/32`, `10.0.1.16/28`) -> router-side link name. */
export type RouteTable = ReadonlyMap<string, string>;

export interface RouteDiff {
  /** Routes to add or to point at another link (`ip route replace`). */
  replace: Array<{ dst: string; dev: string }>;
  /** Destinations no ENI owns any more (`ip route del`). */
  remove: string[];
}

export function diffRoutes(actual: RouteTable, desired: RouteTable): RouteDiff {
  const replace: RouteDiff['replace'] = [];
  const remove: string[] = [];
  for (const [dst, dev] of desired) {
    if (actual.get(dst) !== dev) replace.push({ dst, dev });
  }
  for (const dst of actual.keys()) {
    if (!desired.has(dst)) remove.push(dst);
  }
  return { replace, remove };
}

/** `ip` batch lines that turn `actual` into `desired` in the router namespace. */
export function routeBatch(diff: RouteDiff): string[] {
  return [
    ...diff.remove.map((dst) => `route del ${dst}`),
    ...diff.replace.map(({ dst, dev }) => `route replace ${dst} dev ${dev} scope link`),
  ];
}

/** Normalises an address or CIDR to CIDR form: a bare address is a /32. */
export function asCidr(addressOrCidr: string): string {
  return addressOrCidr.includes('/') ? addressOrCidr : `${addressOrCidr}/32`;
}
