// rtnetlink policy-routing rules (IPv4 and IPv6): add / delete / list.
import { formatPrefix, parsePrefix } from './addr.js';
import { validateLinkName } from './links.js';
import {
  AF_INET,
  AF_INET6,
  attr,
  attrStr,
  attrU32,
  NLM_F_CREATE,
  NLM_F_EXCL,
  parseAttrs,
  RTM,
  readStr,
  readU32,
} from './nlmsg.js';
import { type Table, tableNumber } from './rtnames.js';
import type { NlSocket } from './socket.js';

const FRA_DST = 1;
const FRA_SRC = 2;
const FRA_IIFNAME = 3;
const FRA_PRIORITY = 6;
const FRA_FWMARK = 10;
const FRA_TABLE = 15;
const FRA_FWMASK = 16;
const FRA_OIFNAME = 17;
const FR_ACT_TO_TBL = 1;
const FIB_RULE_INVERT = 0x2;
const HDR_LEN = 12;

export interface RuleSpec {
  /** Rule priority (preference); lower runs first. Strongly recommended: without it the kernel picks one. */
  priority?: number;
  /** Source prefix ("from"). */
  src?: string;
  /** Destination prefix ("to"). */
  dst?: string;
  /** Lookup table. */
  table: Table;
  fwmark?: number;
  /** Mask for fwmark; default all bits. */
  fwmask?: number;
  /** Incoming / outgoing interface name. */
  iif?: string;
  oif?: string;
  /** `ip rule add not ...`: match packets that do NOT match the selectors. */
  invert?: boolean;
  /** Default: inferred from src/dst, else IPv4. */
  family?: 'inet' | 'inet6';
}

export interface Rule {
  family: 'inet' | 'inet6';
  priority: number;
  src?: string;
  dst?: string;
  table: number;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  invert: boolean;
  /** FR_ACT_*: 1 = lookup table. */
  action: number;
}

const u32ok = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function describeRule(r: RuleSpec): string {
  const parts: string[] = [];
  if (r.priority !== undefined) parts.push(`pref ${r.priority}`);
  if (r.invert) parts.push('not');
  parts.push(`from ${r.src ?? 'all'}`);
  if (r.dst) parts.push(`to ${r.dst}`);
  if (r.fwmark !== undefined) {
    parts.push(
      `fwmark 0x${r.fwmark.toString(16)}${r.fwmask !== undefined ? `/0x${r.fwmask.toString(16)}` : ''}`,
    );
  }
  if (r.iif) parts.push(`iif ${r.iif}`);
  if (r.oif) parts.push(`oif ${r.oif}`);
  parts.push(`lookup ${r.table}`);
  return parts.join(' ');
}

function encodeRule(r: RuleSpec, op: string): Buffer[] {
  if (!r || r.table === undefined) throw new TypeError(`${op}: a rule needs a table`);
  const table = tableNumber(r.table);
  const src = r.src === undefined ? undefined : parsePrefix(r.src, 'rule source');
  const dst = r.dst === undefined ? undefined : parsePrefix(r.dst, 'rule destination');
  const family =
    r.family === 'inet6' ? AF_INET6 : r.family === 'inet' ? AF_INET : (src?.family ?? dst?.family ?? AF_INET);
  for (const p of [src, dst]) {
    if (p && p.family !== family)
      throw new TypeError(`${op}: address family of from/to does not match the rule`);
  }
  if (r.priority !== undefined && !u32ok(r.priority))
    throw new TypeError(`${op}: invalid priority ${r.priority}`);
  if (r.fwmark !== undefined && !u32ok(r.fwmark)) throw new TypeError(`${op}: invalid fwmark ${r.fwmark}`);
  if (r.fwmask !== undefined && !u32ok(r.fwmask)) throw new TypeError(`${op}: invalid fwmask ${r.fwmask}`);
  const hdr = Buffer.alloc(HDR_LEN);
  hdr.writeUInt8(family, 0);
  hdr.writeUInt8(dst?.prefixLen ?? 0, 1);
  hdr.writeUInt8(src?.prefixLen ?? 0, 2);
  hdr.writeUInt8(table > 255 ? 0 : table, 4);
  hdr.writeUInt8(FR_ACT_TO_TBL, 7);
  hdr.writeUInt32LE(r.invert ? FIB_RULE_INVERT : 0, 8);
  const body = [hdr, attrU32(FRA_TABLE, table)];
  if (r.priority !== undefined) body.push(attrU32(FRA_PRIORITY, r.priority));
  if (src && src.prefixLen > 0) body.push(attr(FRA_SRC, src.bytes));
  if (dst && dst.prefixLen > 0) body.push(attr(FRA_DST, dst.bytes));
  if (r.fwmark !== undefined) body.push(attrU32(FRA_FWMARK, r.fwmark));
  if (r.fwmask !== undefined) body.push(attrU32(FRA_FWMASK, r.fwmask));
  if (r.iif !== undefined) body.push(attrStr(FRA_IIFNAME, validateLinkName(r.iif, 'rule iif')));
  if (r.oif !== undefined) body.push(attrStr(FRA_OIFNAME, validateLinkName(r.oif, 'rule oif')));
  return body;
}

/** Adds a rule; EEXIST when an identical rule exists. */
export async function addRule(sock: NlSocket, r: RuleSpec): Promise<void> {
  const op = `add rule ${describeRule(r)}`;
  await sock.request(RTM.NEWRULE, NLM_F_CREATE | NLM_F_EXCL, encodeRule(r, op), op);
}

/** Deletes the first rule matching the given selectors; ENOENT when none matches. */
export async function deleteRule(sock: NlSocket, r: RuleSpec): Promise<void> {
  const op = `delete rule ${describeRule(r)}`;
  await sock.request(RTM.DELRULE, 0, encodeRule(r, op), op);
}

export function parseRule(payload: Buffer): Rule {
  const family = payload.readUInt8(0);
  const dstLen = payload.readUInt8(1);
  const srcLen = payload.readUInt8(2);
  const a = parseAttrs(payload, HDR_LEN);
  const rule: Rule = {
    family: family === AF_INET6 ? 'inet6' : 'inet',
    priority: readU32(a.get(FRA_PRIORITY)) ?? 0,
    table: readU32(a.get(FRA_TABLE)) ?? payload.readUInt8(4),
    invert: (payload.readUInt32LE(8) & FIB_RULE_INVERT) !== 0,
    action: payload.readUInt8(7),
  };
  if (srcLen > 0) rule.src = formatPrefix(a.get(FRA_SRC), srcLen, family);
  if (dstLen > 0) rule.dst = formatPrefix(a.get(FRA_DST), dstLen, family);
  const mark = readU32(a.get(FRA_FWMARK));
  if (mark !== undefined) rule.fwmark = mark;
  const mask = readU32(a.get(FRA_FWMASK));
  if (mask !== undefined) rule.fwmask = mask;
  const iif = readStr(a.get(FRA_IIFNAME));
  if (iif) rule.iif = iif;
  const oif = readStr(a.get(FRA_OIFNAME));
  if (oif) rule.oif = oif;
  return rule;
}

export async function listRules(sock: NlSocket, family: 'inet' | 'inet6' = 'inet'): Promise<Rule[]> {
  const hdr = Buffer.alloc(HDR_LEN);
  hdr.writeUInt8(family === 'inet6' ? AF_INET6 : AF_INET, 0);
  const replies = await sock.dump(RTM.GETRULE, [hdr], 'list rules');
  return replies.filter((r) => r.type === RTM.NEWRULE).map((r) => parseRule(r.payload));
}
