// rtnetlink links: list/get (by name, index, MAC), veth pairs across namespaces, up/down, MTU, MAC,
// rename, move to another namespace, delete.
import { closeSync } from 'node:fs';
import { formatMac, parseMac } from './addr.js';
import { errnoText, hasCode, NetlinkError } from './errors.js';
import { openNetns } from './netns.js';
import {
  AF_UNSPEC,
  attr,
  attrNested,
  attrStr,
  attrU32,
  NLM_F_CREATE,
  NLM_F_EXCL,
  parseAttrs,
  RTM,
  readS32,
  readStr,
  readU8,
  readU32,
} from './nlmsg.js';
import type { NlSocket } from './socket.js';

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_TXQLEN = 13;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;

export const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;
const IFINFOMSG_LEN = 16;

const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

/** A network interface as the kernel reports it. */
export interface Link {
  index: number;
  name: string;
  /** Hardware address, lower-case "aa:bb:cc:dd:ee:ff" (absent for e.g. loopback-less tunnels). */
  mac?: string;
  mtu: number;
  /** Raw IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Carrier present (IFF_LOWER_UP). */
  lowerUp: boolean;
  operState: string;
  /** IFLA_INFO_KIND, e.g. "veth", "bridge"; absent for physical devices and loopback. */
  kind?: string;
  master?: number;
  /** IFLA_LINK: for a veth, the peer's index (in the peer's namespace when linkNetnsId is set). */
  parentIndex?: number;
  linkNetnsId?: number;
  txQueueLen?: number;
}

/** A link given by name (as in `ip link`) or by index. */
export type LinkRef = string | number;

export function validateLinkName(name: string, what = 'interface name'): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) > 15 ||
    name === '.' ||
    name === '..' ||
    /[/:\s]/.test(name)
  ) {
    throw new TypeError(
      `invalid ${what} ${JSON.stringify(name)}: use 1-15 characters without '/', ':' or whitespace`,
    );
  }
  return name;
}

function validateRef(ref: LinkRef): LinkRef {
  if (typeof ref === 'number') {
    if (!Number.isInteger(ref) || ref <= 0 || ref > 0x7fffffff) {
      throw new TypeError(`invalid interface index ${ref}: expected a positive integer`);
    }
    return ref;
  }
  return validateLinkName(ref);
}

export function validateMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new TypeError(`invalid MTU ${mtu}: expected an integer between 68 and 65535`);
  }
  return mtu;
}

function ifinfomsg(index = 0, flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** ifinfomsg + IFLA_IFNAME addressing a link by name or index. */
function linkHeader(ref: LinkRef, flags = 0, change = 0): Buffer[] {
  return typeof ref === 'number'
    ? [ifinfomsg(ref, flags, change)]
    : [ifinfomsg(0, flags, change), attrStr(IFLA_IFNAME, ref)];
}

export function parseLink(payload: Buffer): Link {
  const index = payload.readInt32LE(4);
  const flags = payload.readUInt32LE(8);
  const a = parseAttrs(payload, IFINFOMSG_LEN);
  const info = a.get(IFLA_LINKINFO);
  const kind = info ? readStr(parseAttrs(info).get(IFLA_INFO_KIND)) : undefined;
  const link: Link = {
    index,
    name: readStr(a.get(IFLA_IFNAME)) ?? '',
    mtu: readU32(a.get(IFLA_MTU)) ?? 0,
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    operState: OPER_STATES[readU8(a.get(IFLA_OPERSTATE)) ?? 0] ?? 'unknown',
  };
  const mac = formatMac(a.get(IFLA_ADDRESS));
  if (mac) link.mac = mac;
  if (kind) link.kind = kind;
  const master = readU32(a.get(IFLA_MASTER));
  if (master) link.master = master;
  const parent = readS32(a.get(IFLA_LINK));
  if (parent !== undefined && parent !== index) link.parentIndex = parent;
  const nsid = readS32(a.get(IFLA_LINK_NETNSID));
  if (nsid !== undefined) link.linkNetnsId = nsid;
  const txq = readU32(a.get(IFLA_TXQLEN));
  if (txq !== undefined) link.txQueueLen = txq;
  return link;
}

const refText = (ref: LinkRef) => (typeof ref === 'number' ? `index ${ref}` : ref);

export async function listLinks(sock: NlSocket): Promise<Link[]> {
  const replies = await sock.dump(RTM.GETLINK, [ifinfomsg()], 'list links');
  return replies.filter((r) => r.type === RTM.NEWLINK).map((r) => parseLink(r.payload));
}

/** The link, or an ENODEV NetlinkError when there is none. */
export async function getLink(sock: NlSocket, ref: LinkRef): Promise<Link> {
  validateRef(ref);
  const replies = await sock.request(RTM.GETLINK, 0, linkHeader(ref), `get link ${refText(ref)}`);
  const reply = replies.find((r) => r.type === RTM.NEWLINK);
  if (!reply) throw new NetlinkError(`get link ${refText(ref)}`, 'ENODEV', 19);
  return parseLink(reply.payload);
}

/** The link, or undefined when it does not exist. */
export async function findLink(sock: NlSocket, ref: LinkRef): Promise<Link | undefined> {
  try {
    return await getLink(sock, ref);
  } catch (err) {
    if (hasCode(err, 'ENODEV')) return undefined;
    throw err;
  }
}

export async function findLinkByMac(sock: NlSocket, mac: string): Promise<Link | undefined> {
  const want = formatMac(parseMac(mac));
  return (await listLinks(sock)).find((l) => l.mac === want);
}

/** Resolves a name to its index (indexes pass through). */
export async function linkIndex(sock: NlSocket, ref: LinkRef): Promise<number> {
  if (typeof ref === 'number') return validateRef(ref) as number;
  return (await getLink(sock, ref)).index;
}

/** linkIndex for a device named in operation `op`; a missing device fails as `op` with ENODEV. */
export async function resolveDev(sock: NlSocket, dev: LinkRef, op: string): Promise<number> {
  try {
    return await linkIndex(sock, dev);
  } catch (err) {
    if (!(err instanceof NetlinkError)) throw err;
    throw new NetlinkError(op, err.code, err.errno, `device ${refText(dev)}: ${errnoText(err.code)}`, {
      cause: err,
    });
  }
}

/** A namespace by path, or already open (e.g. received from another process); the opener closes it. */
export type NetnsTarget = string | { fd: number; label?: string };

function nsLabel(t: NetnsTarget): string {
  return typeof t === 'string' ? t : (t.label ?? `fd ${t.fd}`);
}

/**
 * Descriptors for IFLA_NET_NS_FD: paths are opened (without blocking, checked to be network
 * namespaces) and closed once the request is done; open namespaces are used as they are.
 */
async function withNsFds<T>(
  targets: (NetnsTarget | undefined)[],
  fn: (fds: (number | undefined)[]) => Promise<T>,
) {
  const fds: (number | undefined)[] = [];
  const opened: number[] = [];
  try {
    for (const t of targets) {
      if (t === undefined) fds.push(undefined);
      else if (typeof t !== 'string') fds.push(t.fd);
      else {
        try {
          const fd = openNetns(t);
          opened.push(fd);
          fds.push(fd);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
          throw new NetlinkError(
            `open netns ${t}`,
            code,
            undefined,
            code === 'ENOENT'
              ? 'no such namespace'
              : code === 'EINVAL'
                ? 'not a network namespace'
                : undefined,
          );
        }
      }
    }
    return await fn(fds);
  } finally {
    for (const fd of opened) closeSync(fd);
  }
}

export interface VethOptions {
  /** Name of the end created in this handle's namespace (or in `netns`). */
  name: string;
  /** Name of the other end. */
  peerName: string;
  /** Namespace for the other end (e.g. the pod's netns); default: same namespace. */
  peerNetns?: NetnsTarget;
  /** Namespace for the first end; default: this handle's namespace. */
  netns?: NetnsTarget;
  /** MTU of both ends unless `peerMtu` is given. */
  mtu?: number;
  peerMtu?: number;
  mac?: string;
  peerMac?: string;
}

export async function createVeth(sock: NlSocket, o: VethOptions): Promise<void> {
  validateLinkName(o.name, 'veth name');
  validateLinkName(o.peerName, 'veth peer name');
  const mtu = o.mtu === undefined ? undefined : validateMtu(o.mtu);
  const peerMtu = o.peerMtu === undefined ? mtu : validateMtu(o.peerMtu);
  const mac = o.mac === undefined ? undefined : parseMac(o.mac);
  const peerMac = o.peerMac === undefined ? undefined : parseMac(o.peerMac);
  const op = `create veth ${o.name} peer ${o.peerName}${o.peerNetns ? ` in ${nsLabel(o.peerNetns)}` : ''}`;
  await withNsFds([o.netns, o.peerNetns], async ([fd, peerFd]) => {
    const peer: Buffer[] = [ifinfomsg(), attrStr(IFLA_IFNAME, o.peerName)];
    if (peerMtu !== undefined) peer.push(attrU32(IFLA_MTU, peerMtu));
    if (peerMac) peer.push(attr(IFLA_ADDRESS, peerMac));
    if (peerFd !== undefined) peer.push(attrU32(IFLA_NET_NS_FD, peerFd));
    const body: Buffer[] = [ifinfomsg(), attrStr(IFLA_IFNAME, o.name)];
    if (mtu !== undefined) body.push(attrU32(IFLA_MTU, mtu));
    if (mac) body.push(attr(IFLA_ADDRESS, mac));
    if (fd !== undefined) body.push(attrU32(IFLA_NET_NS_FD, fd));
    body.push(
      attrNested(IFLA_LINKINFO, [
        attrStr(IFLA_INFO_KIND, 'veth'),
        attrNested(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, Buffer.concat(peer))]),
      ]),
    );
    await sock.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, op);
  });
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** New name (the link must be down for most drivers). */
  name?: string;
  /** Move the link into this namespace; it keeps its name unless `name` is set. */
  netns?: NetnsTarget;
}

export async function setLink(sock: NlSocket, ref: LinkRef, c: LinkChanges): Promise<void> {
  validateRef(ref);
  const parts: string[] = [];
  if (c.up !== undefined) parts.push(c.up ? 'up' : 'down');
  if (c.mtu !== undefined) parts.push(`mtu ${validateMtu(c.mtu)}`);
  const mac = c.mac === undefined ? undefined : parseMac(c.mac);
  if (c.mac !== undefined) parts.push(`address ${c.mac}`);
  if (c.name !== undefined) parts.push(`name ${validateLinkName(c.name, 'new interface name')}`);
  if (c.netns !== undefined) parts.push(`netns ${nsLabel(c.netns)}`);
  if (parts.length === 0) return;
  const op = `set link ${refText(ref)} ${parts.join(' ')}`;
  // Renaming needs the index: IFLA_IFNAME then carries the new name.
  const target: LinkRef = c.name !== undefined ? await linkIndex(sock, ref) : ref;
  await withNsFds([c.netns], async ([fd]) => {
    const flags = c.up ? IFF_UP : 0;
    const change = c.up === undefined ? 0 : IFF_UP;
    const body = linkHeader(target, flags, change);
    if (c.name !== undefined) body.push(attrStr(IFLA_IFNAME, c.name));
    if (c.mtu !== undefined) body.push(attrU32(IFLA_MTU, c.mtu));
    if (mac) body.push(attr(IFLA_ADDRESS, mac));
    if (fd !== undefined) body.push(attrU32(IFLA_NET_NS_FD, fd));
    await sock.request(RTM.NEWLINK, 0, body, op);
  });
}

export async function deleteLink(sock: NlSocket, ref: LinkRef): Promise<void> {
  validateRef(ref);
  await sock.request(RTM.DELLINK, 0, linkHeader(ref), `delete link ${refText(ref)}`);
}
