/**
 * The pod's network, in the reference's routing model, through rtnetlink:
 *   pod:  <ip>/32 on <ifName>; 169.254.1.1 dev <ifName> scope link; default via 169.254.1.1;
 *         permanent neighbour 169.254.1.1 -> host veth MAC (no ARP for the fake gateway).
 *   host: <ip>/32 dev <hostVeth> (main); rule "to <ip> lookup main" @512; for an address on a
 *         secondary ENI rule(s) "from <ip> [to <vpcCidr>] lookup <table>" @1536.
 * Everything here is idempotent in the direction it goes: wiring replaces stale leftovers of an
 * earlier holder of the same name or address, unwiring treats "already gone" as done.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { hasCode } from '../lib/net/errors.js';
import type { Link } from '../lib/net/links.js';
import { openRtnl, type Rtnl } from '../lib/net/rtnl.js';
import type { RuleSpec } from '../lib/net/rules.js';
import { CniError, Code, describe } from './errors.js';

/** The pod's gateway: a link-local address that exists nowhere; the host veth answers for it. */
export const GATEWAY = '169.254.1.1';
export const TO_POD_RULE_PRIORITY = 512;
export const FROM_POD_RULE_PRIORITY = 1536;
export const MAIN_TABLE = 254;

const GONE = ['ENOENT', 'ENODEV', 'ESRCH', 'EADDRNOTAVAIL'];

let host: Rtnl | undefined;
const pods = new Map<string, Rtnl>();

function hostRtnl(): Rtnl {
  host ??= openRtnl();
  return host;
}

/** A handle in the pod's namespace; `undefined` when the namespace is gone and `missingOk`. */
function podRtnl(netns: string, missingOk: true): Rtnl | undefined;
function podRtnl(netns: string, missingOk?: false): Rtnl;
function podRtnl(netns: string, missingOk = false): Rtnl | undefined {
  const cached = pods.get(netns);
  if (cached) return cached;
  try {
    const h = openRtnl(netns);
    pods.set(netns, h);
    return h;
  } catch (err) {
    if (missingOk && hasCode(err, 'ENOENT', 'EINVAL')) return undefined;
    throw new CniError(
      Code.invalidEnv,
      `cannot enter the pod's network namespace ${netns}`,
      `${describe(err)}; CNI_NETNS must name an existing network namespace`,
    );
  }
}

/** Closes the handle into one pod's namespace (a long-lived caller, ipamd, after each call). */
export function releasePod(netns: string): void {
  pods.get(netns)?.close();
  pods.delete(netns);
}

/** Closes the handles (the process normally just exits). */
export function closeAll(): void {
  host?.close();
  host = undefined;
  for (const h of pods.values()) h.close();
  pods.clear();
}

/** A random unicast, locally administered MAC (so it never clashes with a vendor address). */
export function randomMac(): string {
  // /dev/urandom rather than node:crypto, whose loading would cost every ADD start-up time.
  const b = Buffer.alloc(6);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, b, 0, 6, null);
  } finally {
    closeSync(fd);
  }
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export async function assertInterfaceAbsent(netns: string, ifName: string): Promise<void> {
  const existing = await podRtnl(netns).findLink(ifName);
  if (existing) {
    throw new CniError(
      Code.interfaceExists,
      `interface ${ifName} already exists in ${netns}`,
      'the runtime called ADD twice for the same attachment; call DEL first or use another interface name',
    );
  }
}

export interface Wiring {
  netns: string;
  ifName: string;
  hostVeth: string;
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

/** Test hook: the first step whose description starts with this fails (proves ADD's undo path). */
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
  const pod = podRtnl(w.netns);
  const ip = `${w.address}/32`;
  const undo: (() => Promise<unknown>)[] = [];
  try {
    // A pod of the same name (a recreated StatefulSet pod) or an earlier holder of this address may
    // have left state behind; it is stale because ipamd just handed the address to us.
    await removeHostVeth(h, w.hostVeth);
    await removeRules(h, w.address);

    const hostMac = randomMac();
    await step(`create veth ${w.hostVeth} with peer ${w.ifName} in ${w.netns}`, () =>
      h.createVeth({ name: w.hostVeth, peerName: w.ifName, peerNetns: w.netns, mtu: w.mtu, mac: hostMac }),
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

/** Host state for `address`: its rules and the veth its /32 route points at. */
export async function removeHostLeftovers(address: string): Promise<void> {
  const h = hostRtnl();
  await removeRules(h, address);
  const route = (await h.listRoutes({ table: 'main', family: 'inet' })).find(
    (r) => r.dst === `${address}/32`,
  );
  if (route?.oif !== undefined) await removeHostVeth(h, route.oif);
}

export interface Unwiring {
  /** May be empty (the runtime lost the namespace). */
  netns: string;
  ifName: string;
  /** Addresses known from ipamd or prevResult; the pod interface's own are added. */
  addresses: string[];
  /** Host veth names known from prevResult. */
  hostVeths: string[];
}

/** Removes everything ADD made that still exists; missing pieces are fine. */
export async function unwirePod(u: Unwiring): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (err) {
      failures.push(`${what}: ${describe(err)}`);
    }
  };
  const addresses = new Set(u.addresses);
  const pod = u.netns ? podRtnl(u.netns, true) : undefined;
  if (pod) {
    await attempt(`remove ${u.ifName} from ${u.netns}`, async () => {
      const link: Link | undefined = await pod.findLink(u.ifName);
      if (!link) return;
      for (const a of await pod.listAddresses({ dev: link.index, family: 'inet' })) addresses.add(a.address);
      // Deleting the pod end deletes the host end and with it the /32 route.
      await ignoreGone(pod.deleteLink(link.index));
    });
  }
  const h = hostRtnl();
  for (const address of addresses) {
    await attempt(`remove host routing for ${address}`, () => removeHostLeftovers(address));
  }
  for (const name of u.hostVeths) {
    await attempt(`remove host veth ${name}`, () => removeHostVeth(h, name));
  }
  if (failures.length > 0) {
    throw new CniError(Code.teardownFailed, 'failed to remove the pod network', failures.join('; '));
  }
  return [...addresses];
}

export interface Checking {
  netns: string;
  ifName: string;
  address: string;
  podMac?: string;
  mtu?: number;
  hostVeths: string[];
}

/** Lists every way the pod network differs from what ADD leaves; empty when all is in place. */
export async function checkPod(c: Checking): Promise<string[]> {
  const problems: string[] = [];
  const pod = podRtnl(c.netns);
  const h = hostRtnl();
  const ip = `${c.address}/32`;

  const link = await pod.findLink(c.ifName);
  if (!link) return [`interface ${c.ifName} is missing in ${c.netns}`];
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
