/**
 * The plugin's result in one version-neutral shape, converted to the wire shape of the configured
 * cniVersion (0.3.x/0.4.0 tag each IP with "version"; 1.1.0 adds interface and route MTU fields).
 */
import type { CniVersion } from './netconf.js';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  /** Set for interfaces inside a container's namespace. */
  sandbox?: string;
}

export interface IpConfig {
  /** CIDR notation, e.g. 10.0.1.5/32. */
  address: string;
  gateway?: string;
  /** Index into interfaces. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Result {
  interfaces: Interface[];
  ips: IpConfig[];
  routes: Route[];
  dns: Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(obj: Record<string, unknown>, key: string): unknown[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new Error(`"${key}" must be an array`);
  return v;
}

function str(
  obj: Record<string, unknown>,
  key: string,
  where: string,
  required: boolean,
): string | undefined {
  const v = obj[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v === '') throw new Error(`${where}.${key} must be a non-empty string`);
  return v;
}

function num(obj: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${where}.${key} must be an integer`);
  return v;
}

/** Reads a result of any supported version (a previous plugin's output). */
export function parsePrevResult(raw: unknown): Result {
  if (!isObject(raw)) throw new Error('prevResult must be an object');
  const interfaces = list(raw, 'interfaces').map((item, i) => {
    const where = `interfaces[${i}]`;
    if (!isObject(item)) throw new Error(`${where} must be an object`);
    const out: Interface = { name: str(item, 'name', where, true)! };
    const mac = str(item, 'mac', where, false);
    if (mac) out.mac = mac;
    const mtu = num(item, 'mtu', where);
    if (mtu !== undefined) out.mtu = mtu;
    const sandbox = str(item, 'sandbox', where, false);
    if (sandbox) out.sandbox = sandbox;
    return out;
  });
  const ips = list(raw, 'ips').map((item, i) => {
    const where = `ips[${i}]`;
    if (!isObject(item)) throw new Error(`${where} must be an object`);
    const address = str(item, 'address', where, true)!;
    if (!address.includes('/')) throw new Error(`${where}.address "${address}" must be in CIDR notation`);
    const out: IpConfig = { address };
    const gateway = str(item, 'gateway', where, false);
    if (gateway) out.gateway = gateway;
    const iface = num(item, 'interface', where);
    if (iface !== undefined) {
      if (iface < 0 || iface >= interfaces.length)
        throw new Error(`${where}.interface ${iface} is out of range`);
      out.interface = iface;
    }
    return out;
  });
  const routes = list(raw, 'routes').map((item, i) => {
    const where = `routes[${i}]`;
    if (!isObject(item)) throw new Error(`${where} must be an object`);
    const out: Route = { dst: str(item, 'dst', where, true)! };
    const gw = str(item, 'gw', where, false);
    if (gw) out.gw = gw;
    for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = num(item, k, where);
      if (v !== undefined) out[k] = v;
    }
    return out;
  });
  const dns = isObject(raw.dns) ? raw.dns : {};
  return { interfaces, ips, routes, dns };
}

/** Appends this plugin's result to a previous one (chaining), re-basing interface indexes. */
export function appendResult(prev: Result | undefined, ours: Result): Result {
  if (!prev) return ours;
  const base = prev.interfaces.length;
  return {
    interfaces: [...prev.interfaces, ...ours.interfaces],
    ips: [
      ...prev.ips,
      ...ours.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + base })),
    ],
    routes: [...prev.routes, ...ours.routes],
    dns: Object.keys(prev.dns).length > 0 ? prev.dns : ours.dns,
  };
}

function isV1(version: CniVersion): boolean {
  return version.startsWith('1.');
}

/** The result as the runtime expects it for `version`. */
export function formatResult(result: Result, version: CniVersion): Record<string, unknown> {
  const v110 = version === '1.1.0';
  const interfaces = result.interfaces.map((i) => {
    const out: Record<string, unknown> = { name: i.name };
    if (i.mac) out.mac = i.mac;
    if (v110 && i.mtu !== undefined) out.mtu = i.mtu;
    if (i.sandbox) out.sandbox = i.sandbox;
    return out;
  });
  const ips = result.ips.map((ip) => {
    const out: Record<string, unknown> = {};
    if (!isV1(version)) out.version = ip.address.includes(':') ? '6' : '4';
    out.address = ip.address;
    if (ip.gateway) out.gateway = ip.gateway;
    if (ip.interface !== undefined) out.interface = ip.interface;
    return out;
  });
  const routes = result.routes.map((r) => {
    const out: Record<string, unknown> = { dst: r.dst };
    if (r.gw) out.gw = r.gw;
    if (v110) {
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
        if (r[k] !== undefined) out[k] = r[k];
      }
    }
    return out;
  });
  return { cniVersion: version, interfaces, ips, routes, dns: result.dns };
}
