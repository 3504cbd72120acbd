// rtnetlink interface addresses: add / delete / list (IPv4 and IPv6).
import { formatIp, parsePrefix } from './addr.js';
import { type LinkRef, linkIndex, resolveDev } from './links.js';
import {
  AF_INET,
  AF_UNSPEC,
  attr,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  parseAttrs,
  RTM,
  readStr,
} from './nlmsg.js';
import { type Scope, scopeName, scopeNumber } from './rtnames.js';
import type { NlSocket } from './socket.js';

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_BROADCAST = 4;
const IFADDRMSG_LEN = 8;

export interface Address {
  /** Interface index. */
  index: number;
  family: 'inet' | 'inet6';
  /** The interface's own address (IFA_LOCAL, or IFA_ADDRESS for IPv6). */
  address: string;
  prefixLen: number;
  /** "address/prefixLen", as given to addAddress. */
  cidr: string;
  scope: string | number;
  label?: string;
  broadcast?: string;
}

export interface AddressOptions {
  /** Default: host for 127/8 and ::1, else universe (like iproute2). */
  scope?: Scope;
  broadcast?: string;
}

function ifaddrmsg(family: number, prefixLen: number, scope: number, index: number): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixLen, 1);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

const devText = (dev: LinkRef) => (typeof dev === 'number' ? `index ${dev}` : dev);

async function change(
  sock: NlSocket,
  verb: 'add' | 'replace' | 'delete',
  dev: LinkRef,
  cidr: string,
  o: AddressOptions = {},
): Promise<void> {
  const p = parsePrefix(cidr, 'interface address');
  if (cidr === 'default') throw new TypeError('invalid interface address "default": expected "a.b.c.d/len"');
  const op = `${verb} address ${cidr} dev ${devText(dev)}`;
  const index = await resolveDev(sock, dev, op);
  const loopback =
    p.family === AF_INET ? p.bytes[0] === 127 : p.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
  const scope = scopeNumber(o.scope ?? (loopback ? 'host' : 'universe'));
  const body = [
    ifaddrmsg(p.family, p.prefixLen, scope, index),
    attr(IFA_LOCAL, p.bytes),
    attr(IFA_ADDRESS, p.bytes),
  ];
  if (o.broadcast !== undefined)
    body.push(attr(IFA_BROADCAST, parsePrefix(o.broadcast, 'broadcast address').bytes));
  if (verb === 'delete') await sock.request(RTM.DELADDR, 0, body, op);
  else
    await sock.request(RTM.NEWADDR, NLM_F_CREATE | (verb === 'add' ? NLM_F_EXCL : NLM_F_REPLACE), body, op);
}

/** Adds an address; EEXIST when the interface already has it. */
export const addAddress = (sock: NlSocket, dev: LinkRef, cidr: string, o?: AddressOptions) =>
  change(sock, 'add', dev, cidr, o);
/** Adds or updates an address (idempotent). */
export const replaceAddress = (sock: NlSocket, dev: LinkRef, cidr: string, o?: AddressOptions) =>
  change(sock, 'replace', dev, cidr, o);
/** Deletes an address; EADDRNOTAVAIL when the interface does not have it. */
export const deleteAddress = (sock: NlSocket, dev: LinkRef, cidr: string) =>
  change(sock, 'delete', dev, cidr);

export function parseAddress(payload: Buffer): Address {
  const family = payload.readUInt8(0);
  const prefixLen = payload.readUInt8(1);
  const index = payload.readUInt32LE(4);
  const a = parseAttrs(payload, IFADDRMSG_LEN);
  const address = formatIp(a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS), family) ?? '';
  const out: Address = {
    index,
    family: family === AF_INET ? 'inet' : 'inet6',
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    scope: scopeName(payload.readUInt8(3)),
  };
  const label = readStr(a.get(IFA_LABEL));
  if (label) out.label = label;
  const brd = formatIp(a.get(IFA_BROADCAST), family);
  if (brd) out.broadcast = brd;
  return out;
}

export interface AddressFilter {
  dev?: LinkRef;
  family?: 'inet' | 'inet6';
}

export async function listAddresses(sock: NlSocket, f: AddressFilter = {}): Promise<Address[]> {
  const index = f.dev === undefined ? undefined : await linkIndex(sock, f.dev);
  const family = f.family === 'inet' ? AF_INET : f.family === 'inet6' ? 10 : AF_UNSPEC;
  const replies = await sock.dump(RTM.GETADDR, [ifaddrmsg(family, 0, 0, 0)], 'list addresses');
  return replies
    .filter((r) => r.type === RTM.NEWADDR)
    .map((r) => parseAddress(r.payload))
    .filter((a) => (index === undefined || a.index === index) && (!f.family || a.family === f.family));
}
