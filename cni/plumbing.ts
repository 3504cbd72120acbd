/**
 * The pod's network, in the reference's routing model, through rtnetlink:
 *   pod:  <ip>/32 on <ifName>; 169.254.1.1 dev <ifName> scope link; default via 169.254.1.1;
 *         permanent neighbour 169.254.1.1 -> host veth MAC (no ARP for the fake gateway).
 *   host: <ip>/32 dev <hostVeth> (main); rule "to <ip> lookup main" @512; for an address on a
 *         secondary ENI rule(s) "from <ip> [to <vpcCidr>] lookup <table>" @1536.
 * Everything here is idempotent in the direction it goes: wiring replaces stale leftovers of an
 * earlier holder of the same name or address, unwiring treats "already gone" as done.
 */
import { hasCode } from '../lib/net/errors.js';
import type { Link } from '../lib/net/links.js';
import { openRtnl, type Rtnl } from '../lib/net/rtnl.js';
import type { RuleSpec } from '../lib/net/rules.js';
import { CniError, Code, describe } from './errors.js';
import type { PodNetns } from './podns.js';

/** The pod's gateway: a link-local address that exists nowhere; the host veth answers for it. */
export const GATEWAY = '169.254.1.1';
export const TO_POD_RULE_PRIORITY = 512;
export const FROM_POD_RULE_PRIORITY = 1536;
export const MAIN_TABLE = 254;

const GONE = ['ENOENT', 'ENODEV', 'ESRCH', 'EADDRNOTAVAIL'];

// One handle in the node's namespace for the process's life. Its requests are synchronous
// (lib/net/socket.ts), so concurrent calls in ipamd share it without interleaving.
let host: Rtnl | undefined;

function hostRtnl(): Rtnl {
  host ??= openRtnl();
  return host;
}

/** Closes the node handle (the process normally just exits). */
export function closeAll(): void {
  host?.close();
  host = undefined;
}

export async function assertInterfaceAbsent(pod: PodNetns, ifName: string): Promise<void> {
  const existing = await pod.rtnl.findLink(ifName);
  if (existing) {
    throw new CniError(
      Code.interfaceExists,
      `interface ${ifName} already exists in ${pod.path}`,
      'the runtime called ADD twice for the same attachment; call DEL first or use another interface name',
    );
  }
}

export interface Wiring {
  pod: PodNetns;
  ifName: string;
  hostVeth: string;
  /** The host end's MAC, as ipamd recorded it: how DEL and GC recognise this veth later. */
  hostMac: string;
  address: string;
  mtu: number;
  /** 254 for the primary ENI, device number + 1 for a secondary ENI. */
  routeTable: number;
  /** SNAT on (external SNAT off): only VPC-bound traffic follows the ENI's table. */
  snat: boolean;
  vpcCidrs: string[];
  /** AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: not SNATed, so they must leave by the ENI that owns the address. */
  excludeSnatCidrs?: string[];
}

export interface Wired {
  hostMac: string;
  podMac: string;
}

/** The policy rules an address needs on the host. */
export function hostRules(
  w: Pick<Wiring, 'address' | 'routeTable' | 'snat' | 'vpcCidrs' | 'excludeSnatCidrs'>,
): RuleSpec[] {
  const ip = `${w.address}/32`;
  const rules: RuleSpec[] = [{ priority: TO_POD_RULE_PRIORITY, dst: ip, table: 'main' }];
  if (w.routeTable !== MAIN_TABLE) {
    if (w.snat) {
      // Off-VPC traffic falls through to main, leaves by the primary ENI and is SNATed there.
      for (const cidr of [...w.vpcCidrs, ...(w.excludeSnatCidrs ?? [])])
        rules.push({ priority: FROM_POD_RULE_PRIORITY, src: ip, dst: cidr, table: w.routeTable });
    } else {
      rules.push({ priority: FROM_POD_RULE_PRIORITY, src: ip, table: w.routeTable });
    }
  }
  return rules;
}

/** Test hook: the first step whose description starts with this fails (ADD's undo path, DEL's retry). */
const failpoint = process.env.VPCCNI_CNI_FAILPOINT;

async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    if (failpoint && what.startsWith(failpoint))
      throw new Error(`failpoint VPCCNI_CNI_FAILPOINT="${failpoint}"`);
    return await fn();
  } catch (err) {
    throw new CniError(Code.setupFailed, `failed to ${what}`, describe(err));
  }
}

/** Wires the pod; on any failure removes what it created and rethrows. */
export async function wirePod(w: Wiring): Promise<Wired> {
  const h = hostRtnl();
  const pod = w.pod.rtnl;
  const ip = `${w.address}/32`;
  const undo: (() => Promise<unknown>)[] = [];
  try {
    // A pod of the same name (a recreated StatefulSet pod) or an earlier holder of this address may
    // have left state behind; it is stale because ipamd just handed the address to us.
    await removeHostVeth(h, w.hostVeth);
    await removeRules(h, w.address);

    const hostMac = w.hostMac;
    await step(`create veth ${w.hostVeth} with peer ${w.ifName} in ${w.pod.path}`, () =>
      h.createVeth({
        name: w.hostVeth,
        peerName: w.ifName,
        peerNetns: { fd: w.pod.nsFd, label: w.pod.path },
        mtu: w.mtu,
        mac: hostMac,
      }),
    );
    undo.push(() => h.deleteLink(w.hostVeth));
    await step(`set host veth ${w.hostVeth} up`, () => h.setLinkUp(w.hostVeth));

    await step(`set ${w.ifName} up in the pod`, () => pod.setLinkUp(w.ifName));
    await step(`add ${ip} to ${w.ifName} in the pod`, () => pod.addAddress(w.ifName, ip));
    await step(`add route ${GATEWAY} dev ${w.ifName} in the pod`, () =>
      pod.replaceRoute({ dst: `${GATEWAY}/32`, dev: w.ifName, scope: 'link' }),
    );
    await step(`add default route via ${GATEWAY} in the pod`, () =>
      pod.replaceRoute({ dst: 'default', gateway: GATEWAY, dev: w.ifName }),
    );
    await step(`add neighbour ${GATEWAY} -> ${hostMac} in the pod`, () =>
      pod.replaceNeighbor({ ip: GATEWAY, mac: hostMac, dev: w.ifName }),
    );
    const podLink = await step(`read ${w.ifName} in the pod`, () => pod.getLink(w.ifName));

    await step(`add route ${ip} dev ${w.hostVeth}`, () =>
      h.replaceRoute({ dst: ip, dev: w.hostVeth, scope: 'link' }),
    );
    for (const rule of hostRules(w)) {
      await step(`add rule ${describeRuleSpec(rule)}`, () => addRuleIdempotent(h, rule));
      undo.push(() => h.deleteRule(rule));
    }
    return { hostMac, podMac: podLink.mac ?? '' };
  } catch (err) {
    for (const fn of undo.reverse()) await fn().catch(() => undefined);
    throw err;
  }
}

function describeRuleSpec(r: RuleSpec): string {
  return `${r.src ? `from ${r.src} ` : ''}${r.dst ? `to ${r.dst} ` : ''}lookup ${r.table} priority ${r.priority}`;
}

async function addRuleIdempotent(h: Rtnl, rule: RuleSpec): Promise<void> {
  try {
    await h.addRule(rule);
  } catch (err) {
    if (!hasCode(err, 'EEXIST')) throw err;
  }
}

async function ignoreGone(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!hasCode(err, ...GONE)) throw err;
  }
}

/** Deletes every to/from rule this plugin could have made for `address`. */
async function removeRules(h: Rtnl, address: string): Promise<void> {
  const ip = `${address}/32`;
  for (const r of await h.listRules('inet')) {
    const ours =
      (r.priority === TO_POD_RULE_PRIORITY && r.dst === ip && !r.src) ||
      (r.priority === FROM_POD_RULE_PRIORITY && r.src === ip);
    if (!ours) continue;
    await ignoreGone(h.deleteRule({ priority: r.priority, src: r.src, dst: r.dst, table: r.table }));
  }
}

/** Deletes a host link by name or index if it is a veth (never anything else). */
async function removeHostVeth(h: Rtnl, ref: string | number): Promise<void> {
  const link = await h.findLink(ref);
  if (link?.kind === 'veth') await ignoreGone(h.deleteLink(link.index));
}

/** An address this attachment holds, with the host veth MAC recorded for it when known. */
export interface Owned {
  address: string;
  hostVethMac?: string;
}

/**
 * Host state of an address this attachment holds: its rules, and the veth its /32 route points at
 * when that veth's MAC is the one recorded for it (a veth of the same name may be another pod's).
 */
export async function removeHostLeftovers(owned: Owned): Promise<void> {
  const h = hostRtnl();
  await removeRules(h, owned.address);
  if (!owned.hostVethMac) return;
  const route = (await h.listRoutes({ table: 'main', family: 'inet' })).find(
    (r) => r.dst === `${owned.address}/32`,
  );
  if (route?.oif === undefined) return;
  const link = await h.findLink(route.oif);
  if (link?.kind === 'veth' && link.mac === owned.hostVethMac.toLowerCase()) {
    await ignoreGone(h.deleteLink(link.index));
  }
}

export interface Unwiring {
  /** The attachment's namespace; undefined when it is gone or the runtime did not give it. */
  pod?: PodNetns;
  ifName: string;
  /** Addresses this attachment holds per ipamd (or prevResult, for ones nobody else holds). */
  owned: Owned[];
  /** Addresses another attachment holds now: left alone even when found on the pod's interface. */
  notOurs: ReadonlySet<string>;
}

/**
 * Removes what ADD made for this attachment and nothing else: the host rules of every address this
 * attachment provably holds (ipamd's record, or found on its interface), a host veth only when its
 * MAC is the one recorded for the attachment, then the pod's interface in the attachment's own
 * namespace (a veth; deleting it takes the host end and its route along). The interface goes last:
 * when a step fails or the DEL is killed, it is still there for the next DEL to prove, even with
 * ipamd away, which addresses' routing was this attachment's. Missing pieces are fine. Returns the
 * addresses it unwired.
 */
export async function unwirePod(u: Unwiring): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      if (failpoint && what.startsWith(failpoint))
        throw new Error(`failpoint VPCCNI_CNI_FAILPOINT="${failpoint}"`);
      await fn();
    } catch (err) {
      failures.push(`${what}: ${describe(err)}`);
    }
  };
  const owned = new Map(u.owned.filter((o) => !u.notOurs.has(o.address)).map((o) => [o.address, o]));
  const pod = u.pod;
  let podLink: Link | undefined;
  if (pod) {
    await attempt(`read ${u.ifName} in ${pod.path}`, async () => {
      const link = await pod.rtnl.findLink(u.ifName);
      if (link?.kind !== 'veth') return; // not an interface this plugin made
      podLink = link;
      for (const a of await pod.rtnl.listAddresses({ dev: link.index, family: 'inet' })) {
        if (!u.notOurs.has(a.address) && !owned.has(a.address)) owned.set(a.address, { address: a.address });
      }
    });
  }
  for (const o of owned.values()) {
    await attempt(`remove host routing for ${o.address}`, () => removeHostLeftovers(o));
  }
  const link = podLink;
  if (pod && link && failures.length === 0) {
    await attempt(`remove ${u.ifName} from ${pod.path}`, () => ignoreGone(pod.rtnl.deleteLink(link.index)));
  }
  if (failures.length > 0) {
    throw new CniError(Code.teardownFailed, 'failed to remove the pod network', failures.join('; '));
  }
  return [...owned.keys()];
}

export interface Checking {
  pod: PodNetns;
  ifName: string;
  address: string;
  podMac?: string;
  mtu?: number;
  hostVeths: string[];
}

/** Lists every way the pod network differs from what ADD leaves; empty when all is in place. */
export async function checkPod(c: Checking): Promise<string[]> {
  const problems: string[] = [];
  const pod = c.pod.rtnl;
  const h = hostRtnl();
  const ip = `${c.address}/32`;

  const link = await pod.findLink(c.ifName);
  if (!link) return [`interface ${c.ifName} is missing in ${c.pod.path}`];
  if (!link.up) problems.push(`${c.ifName} is down`);
  if (c.mtu !== undefined && link.mtu !== c.mtu)
    problems.push(`${c.ifName} has MTU ${link.mtu}, expected ${c.mtu}`);
  if (c.podMac && link.mac !== c.podMac.toLowerCase())
    problems.push(`${c.ifName} has MAC ${link.mac}, expected ${c.podMac}`);
  const addrs = await pod.listAddresses({ dev: link.index, family: 'inet' });
  if (!addrs.some((a) => a.cidr === ip)) problems.push(`${c.ifName} lacks address ${ip}`);

  const podRoutes = await pod.listRoutes({ table: 'main', family: 'inet' });
  if (!podRoutes.some((r) => r.dst === `${GATEWAY}/32` && r.oif === link.index && !r.gateway)) {
    problems.push(`pod route ${GATEWAY} dev ${c.ifName} scope link is missing`);
  }
  if (!podRoutes.some((r) => r.dst === 'default' && r.gateway === GATEWAY && r.oif === link.index)) {
    problems.push(`pod default route via ${GATEWAY} is missing`);
  }

  // The host end: the pod end's peer index, else the names prevResult gave.
  let hostLink: Link | undefined;
  if (link.parentIndex !== undefined) {
    const peer = await h.findLink(link.parentIndex);
    if (peer?.kind === 'veth' && (c.hostVeths.length === 0 || c.hostVeths.includes(peer.name)))
      hostLink = peer;
  }
  for (const name of c.hostVeths) hostLink ??= await h.findLink(name);
  if (!hostLink) {
    problems.push(`host veth ${c.hostVeths.join(' or ') || `(peer of ${c.ifName})`} is missing`);
  } else {
    if (!hostLink.up) problems.push(`host veth ${hostLink.name} is down`);
    const neigh = (await pod.listNeighbors(link.index)).find((n) => n.ip === GATEWAY);
    if (!neigh?.state.includes('permanent') || neigh.mac !== hostLink.mac) {
      problems.push(`pod neighbour ${GATEWAY} -> ${hostLink.mac} (permanent) is missing or wrong`);
    }
    const hostRoutes = await h.listRoutes({ table: 'main', family: 'inet' });
    if (!hostRoutes.some((r) => r.dst === ip && r.oif === hostLink.index)) {
      problems.push(`host route ${ip} dev ${hostLink.name} is missing`);
    }
  }
  const rules = await h.listRules('inet');
  if (!rules.some((r) => r.priority === TO_POD_RULE_PRIORITY && r.dst === ip && r.table === MAIN_TABLE)) {
    problems.push(`host rule "to ${ip} lookup main" at priority ${TO_POD_RULE_PRIORITY} is missing`);
  }
  for (const r of rules.filter((x) => x.priority === FROM_POD_RULE_PRIORITY && x.src === ip)) {
    if (r.table === MAIN_TABLE)
      problems.push(`host rule "from ${ip}" points at main instead of an ENI table`);
  }
  return problems;
}
