/**
 * The router's delivery table: every private IP (/32) and delegated prefix (/28) routes to the
 * router-side veth of the ENI that owns it. Like the VPC, the router never ARPs for an address:
 * each ENI's primary address has a permanent neighbour entry (its MAC), the primary routes
 * straight to it, and every other address and prefix routes via it (onlink). So a pod address,
 * which the instance does not answer ARP for, is still delivered to its ENI's MAC.
 * Kept as a map destination -> target and changed by diff, so a reassignment between ENIs is one
 * `route replace`.
 */

export interface RouteTarget {
  /** Router-side veth of the owning ENI. */
  dev: string;
  /** The owning ENI's primary address, for every destination but that address itself. */
  via?: string;
}

/** Destination in CIDR form (`10.0.1.5/32`, `10.0.1.16/28`) -> where the router sends it. */
export type RouteTable = ReadonlyMap<string, RouteTarget>;

export interface RouteDiff {
  /** Routes to add or to point elsewhere (`ip route replace`). */
  replace: Array<{ dst: string } & RouteTarget>;
  /** Destinations no ENI owns any more (`ip route del`). */
  remove: string[];
}

function sameTarget(a: RouteTarget | undefined, b: RouteTarget): boolean {
  return a !== undefined && a.dev === b.dev && a.via === b.via;
}

export function diffRoutes(actual: RouteTable, desired: RouteTable): RouteDiff {
  const replace: RouteDiff['replace'] = [];
  const remove: string[] = [];
  for (const [dst, target] of desired) {
    if (!sameTarget(actual.get(dst), target)) replace.push({ dst, ...target });
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
    ...diff.replace.map(({ dst, dev, via }) =>
      via
        ? `route replace ${dst} via ${via} dev ${dev} onlink`
        : `route replace ${dst} dev ${dev} scope link`,
    ),
  ];
}

/** Normalises an address or CIDR to CIDR form: a bare address is a /32. */
export function asCidr(addressOrCidr: string): string {
  return addressOrCidr.includes('/') ? addressOrCidr : `${addressOrCidr}/32`;
}
