// rtnetlink neighbours (ARP / NDP entries): permanent entries pin a gateway's MAC so no ARP is needed.
import { formatIp, formatMac, parseIp, parseMac } from './addr.js';
import { type LinkRef, resolveDev } from './links.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  attr,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  parseAttrs,
  RTM,
} from './nlmsg.js';
import type { NlSocket } from './socket.js';

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDMSG_LEN = 12;

const NUD: Record<string, number> = {
  incomplete: 0x01,
  reachable: 0x02,
  stale: 0x04,
  delay: 0x08,
  probe: 0x10,
  failed: 0x20,
  noarp: 0x40,
  permanent: 0x80,
};

export interface NeighborSpec {
  ip: string;
  mac: string;
  dev: LinkRef;
}

export interface Neighbor {
  index: number;
  family: 'inet' | 'inet6';
  ip: string;
  mac?: string;
  /** NUD state names, e.g. ["permanent"]. */
  state: string[];
}

function ndmsg(family: number, index: number, state: number): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt16LE(state, 8);
  return b;
}

async function change(sock: NlSocket, verb: 'add' | 'replace' | 'delete', n: NeighborSpec): Promise<void> {
  const dev = typeof n.dev === 'number' ? `index ${n.dev}` : n.dev;
  const op = `${verb} neighbor ${n.ip}${verb === 'delete' ? '' : ` lladdr ${n.mac}`} dev ${dev}`;
  const ip = parseIp(n.ip, 'neighbor address');
  const mac = verb === 'delete' ? undefined : parseMac(n.mac);
  const index = await resolveDev(sock, n.dev, op);
  const body = [ndmsg(ip.family, index, NUD['permanent']!), attr(NDA_DST, ip.bytes)];
  if (mac) body.push(attr(NDA_LLADDR, mac));
  if (verb === 'delete') await sock.request(RTM.DELNEIGH, 0, body, op);
  else
    await sock.request(RTM.NEWNEIGH, NLM_F_CREATE | (verb === 'add' ? NLM_F_EXCL : NLM_F_REPLACE), body, op);
}

/** Adds a permanent entry; EEXIST when one exists for that address. */
export const addNeighbor = (sock: NlSocket, n: NeighborSpec) => change(sock, 'add', n);
/** Adds or overwrites a permanent entry (idempotent). */
export const replaceNeighbor = (sock: NlSocket, n: NeighborSpec) => change(sock, 'replace', n);
/** Deletes the entry; ENOENT when there is none. */
export const deleteNeighbor = (sock: NlSocket, n: Omit<NeighborSpec, 'mac'> & { mac?: string }) =>
  change(sock, 'delete', { mac: '00:00:00:00:00:00', ...n });

export function parseNeighbor(payload: Buffer): Neighbor {
  const family = payload.readUInt8(0);
  const state = payload.readUInt16LE(8);
  const a = parseAttrs(payload, NDMSG_LEN);
  const out: Neighbor = {
    index: payload.readInt32LE(4),
    family: family === AF_INET6 ? 'inet6' : 'inet',
    ip: formatIp(a.get(NDA_DST), family) ?? '',
    state: Object.entries(NUD)
      .filter(([, bit]) => state & bit)
      .map(([name]) => name),
  };
  const mac = formatMac(a.get(NDA_LLADDR));
  if (mac) out.mac = mac;
  return out;
}

export async function listNeighbors(sock: NlSocket, dev?: LinkRef): Promise<Neighbor[]> {
  const index = dev === undefined ? undefined : await resolveDev(sock, dev, 'list neighbors');
  const replies = await sock.dump(RTM.GETNEIGH, [ndmsg(AF_UNSPEC, 0, 0)], 'list neighbors');
  return replies
    .filter((r) => r.type === RTM.NEWNEIGH && (r.payload[0] === AF_INET || r.payload[0] === AF_INET6))
    .map((r) => parseNeighbor(r.payload))
    .filter((n) => index === undefined || n.index === index);
}
