/**
 * Node-level host networking that belongs to ipamd (the AWS VPC CNI's model):
 * - SNAT of pod traffic leaving the VPC to the node's primary address (nat AWS-SNAT-CHAIN-0), except
 *   to excluded CIDRs, or nothing at all with external SNAT;
 * - connmark so that traffic of pods on secondary ENIs that gets SNATed, and node-port traffic, routes
 *   through the main table (out of the primary ENI): `ip rule fwmark 0x80/0x80 lookup main` at 1024;
 * - loose rp_filter on the primary interface and IP forwarding;
 * - drops of pod traffic to IMDS and to ipamd's listeners bound beyond loopback (node-rules.ts).
 *
 * Acts on the network namespace this process runs in (ipamd runs inside the instance's namespace).
 * Idempotent: a second run with the same config changes nothing; a run with a new config converges.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { hasCode } from '../../lib/net/errors.js';
import { openRtnl, type Rtnl } from '../../lib/net/rtnl.js';
import type { SnatConfig } from '../../lib/protocol/ipamd.js';
import { type Logger, withComponent } from '../log.js';
import { connmarkBackend, connmarkReconcileCount } from '../metrics.js';
import { applyIptables, type IptablesRunner, NO_RULES, systemIptables } from './iptables.js';
import { ipv4ToInt, normalizeMac, parseIpv4Cidr } from './ipv4.js';
import { DEFAULT_CONNMARK, desiredNodeIptables, wantsMainTableMarkRule } from './node-rules.js';

/** Priority of `fwmark <mark> lookup main` (the reference's hostRulePriority). */
export const MAIN_MARK_RULE_PRIORITY = 1024;
/** Priority of `to <AWS_EXTERNAL_SERVICE_CIDRS entry> lookup main`: before the pods' from-rules (1536). */
export const EXTERNAL_SERVICE_RULE_PRIORITY = 1535;
const MAIN_TABLE = 254;

export interface NodeNetworkConfig {
  primaryMac: string;
  primaryIp: string;
  vpcCidrs: string[];
  snat: SnatConfig;
  vethPrefix: string;
  mtu: number;
  nodePortSupport: boolean;
  setSysctls: boolean;
  /** Connection mark bit for node-port / SNAT routing (the reference's AWS_VPC_K8S_CNI_CONNMARK). */
  connmark?: number;
  /** Drop pod traffic to IMDS (IPAMD_BLOCK_POD_IMDS). Default false. */
  blockPodImds?: boolean;
  /** TCP ports of ipamd's listeners bound beyond loopback, closed to pods. Default none. */
  podClosedTcpPorts?: number[];
  /** AWS_EXTERNAL_SERVICE_CIDRS: routed by the main table whatever ENI the pod's address is on. */
  externalServiceCidrs?: string[];
  log?: Logger;
  /** For tests: how iptables is run. */
  iptables?: IptablesRunner;
}

export interface NodeNetworkResult {
  primaryIf: string;
  /** The iptables-restore script applied, or null when iptables already matched. */
  iptablesScript: string | null;
}

const RANDOMIZE = new Set(['none', 'hashrandom', 'prng']);

/** Checks every field and returns the config with CIDRs in canonical form; all problems in one error. */
export function validateNodeConfig(cfg: NodeNetworkConfig): NodeNetworkConfig {
  const problems: string[] = [];
  const check = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      problems.push((err as Error).message);
      return undefined;
    }
  };
  const primaryMac = check(() => normalizeMac(cfg.primaryMac, 'primary ENI MAC')) ?? cfg.primaryMac;
  check(() => ipv4ToInt(cfg.primaryIp, 'primary IP'));
  if (!Array.isArray(cfg.vpcCidrs) || cfg.vpcCidrs.length === 0)
    problems.push('at least one VPC CIDR is needed');
  const vpcCidrs = (cfg.vpcCidrs ?? []).map((c) => check(() => parseIpv4Cidr(c, 'VPC CIDR').cidr) ?? c);
  const excludeCidrs = (cfg.snat?.excludeCidrs ?? []).map(
    (c) => check(() => parseIpv4Cidr(c, 'AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS entry').cidr) ?? c,
  );
  if (!RANDOMIZE.has(cfg.snat?.randomize)) {
    problems.push(
      `AWS_VPC_K8S_CNI_RANDOMIZESNAT must be none, hashrandom or prng, got "${cfg.snat?.randomize}"`,
    );
  }
  // The host veth is named <prefix> + 11 hex digits, within the 15-character limit.
  if (!/^[A-Za-z0-9_-]{1,4}$/.test(cfg.vethPrefix) || ['eth', 'vlan', 'lo'].includes(cfg.vethPrefix)) {
    problems.push(
      `AWS_VPC_K8S_CNI_VETHPREFIX must be 1-4 letters, digits, "-" or "_" and not eth, vlan or lo, got "${cfg.vethPrefix}"`,
    );
  }
  if (!Number.isInteger(cfg.mtu) || cfg.mtu < 576 || cfg.mtu > 9001) {
    problems.push(`MTU must be a whole number from 576 to 9001, got ${cfg.mtu}`);
  }
  const mark = cfg.connmark ?? DEFAULT_CONNMARK;
  if (!Number.isInteger(mark) || mark <= 0 || mark > 0xffffffff) {
    problems.push(`connmark must be a non-zero 32-bit number, got ${mark}`);
  }
  for (const p of cfg.podClosedTcpPorts ?? []) {
    if (!Number.isInteger(p) || p < 1 || p > 65535)
      problems.push(`a listener port must be 1-65535, got ${p}`);
  }
  const externalServiceCidrs = (cfg.externalServiceCidrs ?? []).map(
    (c) => check(() => parseIpv4Cidr(c, 'AWS_EXTERNAL_SERVICE_CIDRS entry').cidr) ?? c,
  );
  if (problems.length > 0) throw new Error(`invalid node network config: ${problems.join('; ')}`);
  return { ...cfg, primaryMac, vpcCidrs, snat: { ...cfg.snat, excludeCidrs }, externalServiceCidrs };
}

// Read-plan-apply must not interleave (two plans from the same state would both delete a rule).
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const run = queue.then(fn, fn);
  queue = run.catch(() => {});
  return run;
}

export function setupNodeNetwork(input: NodeNetworkConfig): Promise<NodeNetworkResult> {
  try {
    const cfg = validateNodeConfig(input);
    return serialized(() => applyNodeNetwork(cfg)).then(
      (r) => {
        // The reference's connmark gauges: ipamd's connmark rules are iptables ones.
        connmarkBackend.set({ backend: 'iptables' }, 1);
        connmarkReconcileCount.inc({ result: 'success' });
        return r;
      },
      (err) => {
        connmarkReconcileCount.inc({ result: 'error' });
        throw err;
      },
    );
  } catch (err) {
    return Promise.reject(err);
  }
}

async function applyNodeNetwork(cfg: NodeNetworkConfig): Promise<NodeNetworkResult> {
  const log = cfg.log && withComponent(cfg.log, 'hostnet');
  const mark = cfg.connmark ?? DEFAULT_CONNMARK;
  const rtnl = openRtnl();
  try {
    const link = await rtnl.findLinkByMac(cfg.primaryMac);
    if (!link) throw new Error(`no interface has the primary ENI's MAC ${cfg.primaryMac}`);
    if (link.mtu !== cfg.mtu) await rtnl.setMtu(link.index, cfg.mtu);

    await ensureMarkRule(rtnl, mark, wantsMainTableMarkRule(cfg));
    await ensureExternalServiceRules(rtnl, cfg.externalServiceCidrs ?? []);

    if (cfg.setSysctls) {
      // Loose reverse-path filtering: replies for pods on secondary ENIs arrive on the primary ENI.
      await setSysctl(`net/ipv4/conf/${link.name}/rp_filter`, '2');
      await setSysctl('net/ipv4/ip_forward', '1');
    }

    const desired = desiredNodeIptables({
      primaryIf: link.name,
      primaryIp: cfg.primaryIp,
      vpcCidrs: cfg.vpcCidrs,
      snat: cfg.snat,
      vethPrefix: cfg.vethPrefix,
      nodePortSupport: cfg.nodePortSupport,
      mark,
      blockPodImds: cfg.blockPodImds ?? false,
      podClosedTcpPorts: cfg.podClosedTcpPorts ?? [],
    });
    const script = await applyIptables(cfg.iptables ?? systemIptables(), desired);
    log?.info(
      {
        primaryIf: link.name,
        snat: cfg.snat.enabled ? cfg.snat.randomize : 'external',
        excludeCidrs: cfg.snat.excludeCidrs,
        vpcCidrs: cfg.vpcCidrs,
        blockPodImds: cfg.blockPodImds ?? false,
        podClosedTcpPorts: cfg.podClosedTcpPorts ?? [],
        iptablesChanged: script !== null,
      },
      'node networking set up',
    );
    return { primaryIf: link.name, iptablesScript: script };
  } finally {
    rtnl.close();
  }
}

/** Removes everything setupNodeNetwork added (rules, chains, the mark rule); sysctls are left as they are. */
export function teardownNodeNetwork(
  opts: { connmark?: number; iptables?: IptablesRunner } = {},
): Promise<void> {
  return serialized(async () => {
    await applyIptables(opts.iptables ?? systemIptables(), NO_RULES);
    const rtnl = openRtnl();
    try {
      await ensureMarkRule(rtnl, opts.connmark ?? DEFAULT_CONNMARK, false);
      await ensureExternalServiceRules(rtnl, []);
    } finally {
      rtnl.close();
    }
  });
}

/** Converges the `fwmark mark/mark lookup main` rule at priority 1024 to present or absent. */
async function ensureMarkRule(rtnl: Rtnl, mark: number, wanted: boolean): Promise<void> {
  const spec = { priority: MAIN_MARK_RULE_PRIORITY, fwmark: mark, fwmask: mark, table: 'main' as const };
  const rules = (await rtnl.listRules('inet')).filter(
    (r) => r.priority === MAIN_MARK_RULE_PRIORITY && r.fwmark !== undefined,
  );
  let have = false;
  for (const r of rules) {
    const exact =
      r.fwmark === mark && r.fwmask === mark && r.table === MAIN_TABLE && !r.src && !r.dst && !r.invert;
    if (exact && wanted && !have) {
      have = true;
      continue;
    }
    // A duplicate, or a rule left with another mark by an earlier config.
    await ignoreCodes(
      rtnl.deleteRule({ priority: r.priority, fwmark: r.fwmark, fwmask: r.fwmask, table: r.table }),
      'ENOENT',
    );
  }
  if (wanted && !have) await ignoreCodes(rtnl.addRule(spec), 'EEXIST');
}

/** Converges the `to <cidr> lookup main` rules at priority 1535 to exactly `cidrs`. */
async function ensureExternalServiceRules(rtnl: Rtnl, cidrs: string[]): Promise<void> {
  const want = new Set(cidrs);
  const have = (await rtnl.listRules('inet')).filter((r) => r.priority === EXTERNAL_SERVICE_RULE_PRIORITY);
  for (const r of have) {
    const exact =
      r.dst !== undefined && r.table === MAIN_TABLE && !r.src && !r.invert && r.fwmark === undefined;
    if (exact && want.delete(r.dst!)) continue;
    await ignoreCodes(
      rtnl.deleteRule({ priority: r.priority, ...(r.dst ? { dst: r.dst } : {}), table: r.table }),
      'ENOENT',
    );
  }
  for (const dst of want) {
    await ignoreCodes(
      rtnl.addRule({ priority: EXTERNAL_SERVICE_RULE_PRIORITY, dst, table: 'main' }),
      'EEXIST',
    );
  }
}

async function setSysctl(key: string, value: string): Promise<void> {
  const path = `/proc/sys/${key}`;
  const current = (await readFile(path, 'utf8')).trim();
  if (current !== value) await writeFile(path, value);
}

async function ignoreCodes(p: Promise<unknown>, ...codes: string[]): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!hasCode(err, ...codes)) throw err;
  }
}
