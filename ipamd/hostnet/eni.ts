/**
 * Host networking for one secondary ENI (the AWS VPC CNI's model): the interface with the ENI's MAC
 * gets the MTU, comes up, carries the ENI's primary address, and gets its own route table
 * (device number + 1) with the subnet and a default route via the subnet's router. Pods whose
 * address lives on this ENI are routed through that table by the CNI plugin's `from <ip>` rules, so
 * their traffic leaves through the ENI that owns the address (the VPC drops it otherwise).
 *
 * The primary ENI (device 0) is left exactly as the OS configured it.
 * Idempotent: the table is converged (stale routes removed), the address added only when missing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hasCode } from '../../lib/net/errors.js';
import type { Link } from '../../lib/net/links.js';
import { openRtnl, type Rtnl } from '../../lib/net/rtnl.js';
import { type Logger, withComponent } from '../log.js';
import { cidrContains, ipv4ToInt, normalizeMac, parseIpv4Cidr, subnetGateway } from './ipv4.js';

/** Priority of `from <ENI primary ip> lookup <table>` (the plugin's from-pod rules use the same). */
export const ENI_FROM_RULE_PRIORITY = 1536;

export interface EniNetworkSpec {
  mac: string;
  deviceNumber: number;
  primaryIp: string;
  subnetCidr: string;
  mtu: number;
}

export interface EniNetworkOptions {
  log?: Logger;
  /** How long to wait for the interface to appear after attachment (udev, driver). */
  linkWaitMs?: number;
  /** Namespace to act in (path); default the process's own. For tests and tools. */
  netns?: string;
}

export function eniRouteTable(deviceNumber: number): number {
  return deviceNumber + 1;
}

/** Validates a spec (all problems in one error); returns the normalised MAC and parsed subnet. */
export function validateEniSpec(eni: EniNetworkSpec) {
  const problems: string[] = [];
  let mac = eni.mac;
  let subnet: ReturnType<typeof parseIpv4Cidr> | undefined;
  try {
    mac = normalizeMac(eni.mac, 'ENI MAC');
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (!Number.isInteger(eni.deviceNumber) || eni.deviceNumber < 0 || eni.deviceNumber > 255) {
    problems.push(`device number must be a whole number 0-255, got ${eni.deviceNumber}`);
  }
  try {
    subnet = parseIpv4Cidr(eni.subnetCidr, 'ENI subnet CIDR');
    if (subnet.prefixLen > 28 || subnet.prefixLen < 16) {
      problems.push(`ENI subnet ${eni.subnetCidr} has a prefix length outside a VPC subnet's /16-/28`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  try {
    ipv4ToInt(eni.primaryIp, 'ENI primary IP');
    if (subnet && !cidrContains(subnet, eni.primaryIp)) {
      problems.push(`ENI primary IP ${eni.primaryIp} is not inside its subnet ${eni.subnetCidr}`);
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  if (!Number.isInteger(eni.mtu) || eni.mtu < 576 || eni.mtu > 9001) {
    problems.push(`MTU must be a whole number from 576 to 9001, got ${eni.mtu}`);
  }
  if (problems.length > 0 || !subnet) {
    throw new Error(`invalid ENI network spec for ${eni.mac}: ${problems.join('; ')}`);
  }
  return { mac, subnet };
}

export async function setupEniNetwork(
  eni: EniNetworkSpec,
  opts: EniNetworkOptions = {},
): Promise<{ ifName: string }> {
  const { mac, subnet } = validateEniSpec(eni);
  const log = opts.log && withComponent(opts.log, 'hostnet').child({ mac });
  const rtnl = openRtnl(opts.netns);
  try {
    const link = await waitForLink(rtnl, mac, opts.linkWaitMs ?? 15_000);
    if (eni.deviceNumber === 0) return { ifName: link.name };

    const table = eniRouteTable(eni.deviceNumber);
    const gateway = subnetGateway(subnet);
    const ifAddr = `${eni.primaryIp}/${subnet.prefixLen}`;

    if (link.mtu !== eni.mtu) await rtnl.setMtu(link.index, eni.mtu);
    if (!link.up) await rtnl.setLinkUp(link.index);

    // Exactly the ENI's primary address: an address left by an earlier attachment would answer ARP
    // for an IP this ENI does not own.
    const addrs = await rtnl.listAddresses({ dev: link.index, family: 'inet' });
    for (const a of addrs) {
      if (a.cidr !== ifAddr && a.scope === 'universe')
        await ignore(rtnl.deleteAddress(link.index, a.cidr), 'EADDRNOTAVAIL');
    }
    if (!addrs.some((a) => a.cidr === ifAddr)) await ignore(rtnl.addAddress(link.index, ifAddr), 'EEXIST');
    // The kernel's prefix route in main would send subnet traffic out of this ENI; only its own table may.
    await ignore(
      rtnl.deleteRoute({
        dst: subnet.cidr,
        dev: link.index,
        table: 'main',
        src: eni.primaryIp,
        scope: 'link',
      }),
      'ESRCH',
      'ENOENT',
    );

    await convergeTable(rtnl, table, link.index, subnet.cidr, gateway);
    await ensureFromRule(rtnl, eni.primaryIp, table);
    log?.info({ ifName: link.name, table, address: ifAddr, gateway, mtu: eni.mtu }, 'ENI networking set up');
    return { ifName: link.name };
  } finally {
    rtnl.close();
  }
}

/** Removes the ENI's route table, its from-rule and its address. Best effort: the link may be gone. */
export async function teardownEniNetwork(eni: EniNetworkSpec, opts: EniNetworkOptions = {}): Promise<void> {
  const { mac, subnet } = validateEniSpec(eni);
  if (eni.deviceNumber === 0) return;
  const table = eniRouteTable(eni.deviceNumber);
  const rtnl = openRtnl(opts.netns);
  try {
    for (const r of await rtnl.listRoutes({ table })) {
      await ignore(
        rtnl.deleteRoute({ dst: r.dst, table, ...(r.oif ? { dev: r.oif } : {}) }),
        'ESRCH',
        'ENOENT',
        'ENODEV',
      );
    }
    for (const r of await rtnl.listRules('inet')) {
      if (r.priority === ENI_FROM_RULE_PRIORITY && r.src === `${eni.primaryIp}/32` && r.table === table) {
        await ignore(rtnl.deleteRule({ priority: r.priority, src: r.src, table }), 'ENOENT');
      }
    }
    const link = await rtnl.findLinkByMac(mac);
    if (link) {
      await ignore(
        rtnl.deleteAddress(link.index, `${eni.primaryIp}/${subnet.prefixLen}`),
        'EADDRNOTAVAIL',
        'ENODEV',
      );
    }
  } finally {
    rtnl.close();
  }
}

async function waitForLink(rtnl: Rtnl, mac: string, waitMs: number): Promise<Link> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const link = await rtnl.findLinkByMac(mac);
    if (link) return link;
    if (Date.now() >= deadline) {
      throw new Error(`no interface with MAC ${mac} appeared within ${waitMs} ms (is the ENI attached?)`);
    }
    await sleep(Math.min(200, Math.max(1, deadline - Date.now())));
  }
}

/** Table `table` holds exactly: `<subnet> dev <if> scope link` and `default via <gw> dev <if>`. */
async function convergeTable(
  rtnl: Rtnl,
  table: number,
  dev: number,
  subnet: string,
  gateway: string,
): Promise<void> {
  const current = await rtnl.listRoutes({ table, family: 'inet' });
  const isSubnet = (r: (typeof current)[number]) => r.dst === subnet && r.oif === dev && !r.gateway;
  const isDefault = (r: (typeof current)[number]) =>
    r.dst === 'default' && r.oif === dev && r.gateway === gateway;
  for (const r of current) {
    if (isSubnet(r) || isDefault(r)) continue;
    await ignore(
      rtnl.deleteRoute({ dst: r.dst, table, ...(r.oif ? { dev: r.oif } : {}) }),
      'ESRCH',
      'ENOENT',
    );
  }
  if (!current.some(isSubnet)) await rtnl.replaceRoute({ dst: subnet, dev, table, scope: 'link' });
  if (!current.some(isDefault)) await rtnl.replaceRoute({ dst: 'default', gateway, dev, table });
}

/** Host traffic sourced from the ENI's own address leaves through the ENI's table. */
async function ensureFromRule(rtnl: Rtnl, ip: string, table: number): Promise<void> {
  const src = `${ip}/32`;
  const rules = (await rtnl.listRules('inet')).filter(
    (r) => r.priority === ENI_FROM_RULE_PRIORITY && r.src === src,
  );
  let have = false;
  for (const r of rules) {
    if (r.table === table && !r.dst && !have) {
      have = true;
      continue;
    }
    await ignore(rtnl.deleteRule({ priority: r.priority, src, table: r.table }), 'ENOENT');
  }
  if (!have) await ignore(rtnl.addRule({ priority: ENI_FROM_RULE_PRIORITY, src, table }), 'EEXIST');
}

async function ignore(p: Promise<unknown>, ...codes: string[]): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!hasCode(err, ...codes)) throw err;
  }
}
