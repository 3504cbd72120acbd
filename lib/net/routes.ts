// rtnetlink routes: add / replace / delete / list, any table (ids > 255 via RTA_TABLE).
import { formatIp, formatPrefix, parseIp, parsePrefix } from './addr.js';
import { NetlinkError } from './errors.js';
import { type LinkRef, resolveDev } from './links.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  attr,
  attrU32,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  parseAttrs,
  RTM,
  readU32,
} from './nlmsg.js';
import {
  protocolName,
  protocolNumber,
  type RouteProtocol,
  type RouteType,
  routeTypeName,
  routeTypeNumber,
  type Scope,
  scopeName,
  scopeNumber,
  type Table,
  tableNumber,
} from './rtnames.js';
import type { NlSocket } from './socket.js';

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const RTMSG_LEN = 12;
const RTNH_F_ONLINK = 0x4;
const RT_TABLE_UNSPEC = 0;
const RT_TABLE_MAIN = 254;

export interface RouteSpec {
  /** "10.0.0.5/32", "10.1.0.0/16", a bare address (host route) or "default". */
  dst: string;
  gateway?: string;
  /** Output interface, by name or index. */
  dev?: LinkRef;
  /** Default: main (254). */
  table?: Table;
  /** Default as iproute2: host for local routes, link for a route with dev and no gateway, else universe. */
  scope?: Scope;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  /** Default: boot, like `ip route add`. */
  protocol?: RouteProtocol;
  /** Route metric / priority. */
  metric?: number;
  /** Default: unicast. */
  type?: RouteType;
  /** Gateway is on-link even without a matching connected route (RTNH_F_ONLINK). */
  onlink?: boolean;
}

export interface Route {
  family: 'inet' | 'inet6';
  /** "a.b.c.d/len" or "default". */
  dst: string;
  gateway?: string;
  /** Output interface index. */
  oif?: number;
  table: number;
  scope: string | number;
  src?: string;
  protocol: string | number;
  metric?: number;
  type: string;
  onlink: boolean;
}

function rtmsg(
  family: number,
  dstLen: number,
  table: number,
  protocol: number,
  scope: number,
  type: number,
  flags: number,
): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeUInt8(dstLen, 1);
  b.writeUInt8(table > 255 ? RT_TABLE_UNSPEC : table, 4);
  b.writeUInt8(protocol, 5);
  b.writeUInt8(scope, 6);
  b.writeUInt8(type, 7);
  b.writeUInt32LE(flags, 8);
  return b;
}

export function describeRoute(r: RouteSpec): string {
  const parts = [r.dst];
  if (r.type && r.type !== 'unicast') parts.unshift(r.type);
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.dev !== undefined) parts.push(`dev ${typeof r.dev === 'number' ? `index ${r.dev}` : r.dev}`);
  if (r.table !== undefined && r.table !== 'main' && r.table !== RT_TABLE_MAIN)
    parts.push(`table ${r.table}`);
  if (r.src) parts.push(`src ${r.src}`);
  if (r.metric !== undefined) parts.push(`metric ${r.metric}`);
  return parts.join(' ');
}

async function encodeRoute(sock: NlSocket, r: RouteSpec, op: string, forDelete: boolean): Promise<Buffer[]> {
  if (!r || typeof r.dst !== 'string')
    throw new TypeError(`${op}: route needs a dst ("a.b.c.d/len" or "default")`);
  const gw = r.gateway === undefined ? undefined : parseIp(r.gateway, 'gateway');
  const dst = parsePrefix(r.dst, 'route destination', gw?.family ?? AF_INET);
  if (gw && gw.family !== dst.family) throw new TypeError(`${op}: gateway and destination families differ`);
  const src = r.src === undefined ? undefined : parseIp(r.src, 'route source');
  const table = tableNumber(r.table ?? 'main');
  // On delete, type 0 and protocol 0 match any.
  const type = r.type !== undefined ? routeTypeNumber(r.type) : forDelete ? 0 : routeTypeNumber('unicast');
  // Deleting matches any scope/protocol unless given; adding picks iproute2's defaults.
  const scope =
    r.scope !== undefined
      ? scopeNumber(r.scope)
      : forDelete
        ? 255 // RT_SCOPE_NOWHERE acts as a wildcard on delete
        : r.type === 'local'
          ? scopeNumber('host')
          : !gw && r.dev !== undefined && type === routeTypeNumber('unicast')
            ? scopeNumber('link')
            : 0;
  const protocol =
    r.protocol !== undefined ? protocolNumber(r.protocol) : forDelete ? 0 : protocolNumber('boot');
  if (r.metric !== undefined && (!Number.isInteger(r.metric) || r.metric < 0 || r.metric > 0xffffffff)) {
    throw new TypeError(`${op}: invalid metric ${r.metric}`);
  }
  const body = [rtmsg(dst.family, dst.prefixLen, table, protocol, scope, type, r.onlink ? RTNH_F_ONLINK : 0)];
  if (dst.prefixLen > 0) body.push(attr(RTA_DST, dst.bytes));
  body.push(attrU32(RTA_TABLE, table));
  if (gw) body.push(attr(RTA_GATEWAY, gw.bytes));
  if (r.dev !== undefined) body.push(attrU32(RTA_OIF, await resolveDev(sock, r.dev, op)));
  if (src) body.push(attr(RTA_PREFSRC, src.bytes));
  if (r.metric !== undefined) body.push(attrU32(RTA_PRIORITY, r.metric));
  return body;
}

/** Adds a route; EEXIST if one with the same destination, table and metric exists. */
export async function addRoute(sock: NlSocket, r: RouteSpec): Promise<void> {
  const op = `add route ${describeRoute(r)}`;
  await sock.request(RTM.NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, await encodeRoute(sock, r, op, false), op);
}

/** Adds or replaces the route for that destination/table/metric (idempotent). */
export async function replaceRoute(sock: NlSocket, r: RouteSpec): Promise<void> {
  const op = `replace route ${describeRoute(r)}`;
  await sock.request(RTM.NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, await encodeRoute(sock, r, op, false), op);
}

/** Deletes the first route matching the given fields; ESRCH when none matches. */
export async function deleteRoute(sock: NlSocket, r: RouteSpec): Promise<void> {
  const op = `delete route ${describeRoute(r)}`;
  await sock.request(RTM.DELROUTE, 0, await encodeRoute(sock, r, op, true), op);
}

export function parseRoute(payload: Buffer): Route {
  const family = payload.readUInt8(0);
  const dstLen = payload.readUInt8(1);
  const a = parseAttrs(payload, RTMSG_LEN);
  const dstBytes = a.get(RTA_DST);
  const route: Route = {
    family: family === AF_INET6 ? 'inet6' : 'inet',
    dst: dstLen === 0 ? 'default' : formatPrefix(dstBytes, dstLen, family),
    table: readU32(a.get(RTA_TABLE)) ?? payload.readUInt8(4),
    scope: scopeName(payload.readUInt8(6)),
    protocol: protocolName(payload.readUInt8(5)),
    type: routeTypeName(payload.readUInt8(7)),
    onlink: (payload.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
  };
  const gw = formatIp(a.get(RTA_GATEWAY), family);
  if (gw) route.gateway = gw;
  const oif = readU32(a.get(RTA_OIF));
  if (oif !== undefined) route.oif = oif;
  const src = formatIp(a.get(RTA_PREFSRC), family);
  if (src) route.src = src;
  const metric = readU32(a.get(RTA_PRIORITY));
  if (metric !== undefined) route.metric = metric;
  return route;
}

export interface RouteFilter {
  /** Default: main. "all" lists every table, including local. */
  table?: Table | 'all';
  family?: 'inet' | 'inet6';
  /** Only routes out of this interface. */
  dev?: LinkRef;
}

export async function listRoutes(sock: NlSocket, f: RouteFilter = {}): Promise<Route[]> {
  const table = f.table === 'all' ? undefined : tableNumber(f.table ?? 'main');
  const oif = f.dev === undefined ? undefined : await resolveDev(sock, f.dev, 'list routes');
  const family = f.family === 'inet6' ? AF_INET6 : f.family === 'inet' ? AF_INET : AF_UNSPEC;
  const replies = await sock.dump(RTM.GETROUTE, [rtmsg(family, 0, 0, 0, 0, 0, 0)], 'list routes');
  return replies
    .filter((r) => r.type === RTM.NEWROUTE)
    .map((r) => parseRoute(r.payload))
    .filter(
      (r) =>
        (table === undefined || r.table === table) &&
        (oif === undefined || r.oif === oif) &&
        (!f.family || r.family === f.family),
    );
}

const RTA_SRC = 2;
const RTA_MARK = 16;
const RTM_F_LOOKUP_TABLE = 0x1000;

export interface RouteLookup {
  /** Source address of the packet (selects `from` rules). */
  src?: string;
  /** Force the output interface. */
  oif?: LinkRef;
  /** Packet mark (selects `fwmark` rules). */
  mark?: number;
}

/**
 * `ip route get`: the route the kernel would use for `dst`, through the policy rules; `table` in the
 * result is the table that matched. Rejects with ENETUNREACH when nothing matches.
 */
export async function lookupRoute(sock: NlSocket, dst: string, o: RouteLookup = {}): Promise<Route> {
  const to = parseIp(dst, 'destination');
  const from = o.src === undefined ? undefined : parseIp(o.src, 'source');
  const op = `get route ${dst}${o.src ? ` from ${o.src}` : ''}${o.mark !== undefined ? ` mark ${o.mark}` : ''}`;
  if (from && from.family !== to.family) throw new TypeError(`${op}: source and destination families differ`);
  if (o.mark !== undefined && (!Number.isInteger(o.mark) || o.mark < 0 || o.mark > 0xffffffff)) {
    throw new TypeError(`${op}: invalid mark ${o.mark}`);
  }
  const hdr = rtmsg(to.family, to.bytes.length * 8, 0, 0, 0, 0, RTM_F_LOOKUP_TABLE);
  if (from) hdr.writeUInt8(from.bytes.length * 8, 2);
  const body = [hdr, attr(RTA_DST, to.bytes)];
  if (from) body.push(attr(RTA_SRC, from.bytes));
  if (o.oif !== undefined) body.push(attrU32(RTA_OIF, await resolveDev(sock, o.oif, op)));
  if (o.mark !== undefined) body.push(attrU32(RTA_MARK, o.mark));
  const replies = await sock.request(RTM.GETROUTE, 0, body, op);
  const reply = replies.find((r) => r.type === RTM.NEWROUTE);
  if (!reply) throw new NetlinkError(op, 'ENETUNREACH', 101);
  return parseRoute(reply.payload);
}
