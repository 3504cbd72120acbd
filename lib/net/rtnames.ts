// Symbolic names for rtnetlink numbers (as iproute2 prints them) and their validation.

const SCOPES: Record<string, number> = {
  universe: 0,
  global: 0,
  site: 200,
  link: 253,
  host: 254,
  nowhere: 255,
};
const PROTOCOLS: Record<string, number> = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4, dhcp: 16 };
const ROUTE_TYPES: Record<string, number> = {
  unicast: 1,
  local: 2,
  broadcast: 3,
  anycast: 4,
  multicast: 5,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
};
const TABLES: Record<string, number> = { default: 253, main: 254, local: 255 };

export type Scope = 'universe' | 'global' | 'site' | 'link' | 'host' | 'nowhere' | number;
export type RouteProtocol = 'kernel' | 'boot' | 'static' | 'dhcp' | 'redirect' | 'unspec' | number;
export type RouteType = keyof typeof ROUTE_TYPES;
export type Table = 'main' | 'local' | 'default' | number;

function lookup(kind: string, names: Record<string, number>, v: string | number, max: number): number {
  if (typeof v === 'number') {
    if (Number.isInteger(v) && v >= 0 && v <= max) return v;
  } else if (Object.hasOwn(names, v)) {
    return names[v]!;
  }
  throw new TypeError(
    `invalid ${kind} ${JSON.stringify(v)}: use one of ${Object.keys(names).join(', ')} or a number 0-${max}`,
  );
}

function name(names: Record<string, number>, v: number): string | number {
  for (const [k, n] of Object.entries(names)) if (n === v && k !== 'global') return k;
  return v;
}

export const scopeNumber = (v: Scope) => lookup('scope', SCOPES, v, 255);
export const scopeName = (v: number) => name(SCOPES, v);
export const protocolNumber = (v: RouteProtocol) => lookup('route protocol', PROTOCOLS, v, 255);
export const protocolName = (v: number) => name(PROTOCOLS, v);
export const routeTypeNumber = (v: RouteType) => lookup('route type', ROUTE_TYPES, v, 255);
export const routeTypeName = (v: number) => name(ROUTE_TYPES, v) as string;
/** Route tables are 32-bit ids: 0 (unspec) is not a table you can use. */
export const tableNumber = (v: Table) => {
  const n = lookup('route table', TABLES, v, 0xffffffff);
  if (n === 0) throw new TypeError('invalid route table 0: use 1-4294967295, "main", "local" or "default"');
  return n;
};
