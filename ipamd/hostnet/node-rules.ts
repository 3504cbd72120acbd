/**
 * The node's iptables model (the AWS VPC CNI's), as data: which rules ipamd wants in which chain.
 * Pure, so every mode (SNAT on/off, exclusions, randomisation, node ports) is tested as a table.
 *
 * Rules are written exactly as `iptables-save` prints them, so the current state can be compared
 * with the desired one as text and an unchanged node is left untouched.
 *
 * - nat AWS-SNAT-CHAIN-0 (from POSTROUTING): RETURN for VPC CIDRs and excluded CIDRs, then SNAT to the
 *   primary address for everything not addressed to this node.
 * - nat AWS-CONNMARK-CHAIN-0 (from PREROUTING, pod veths): marks pod connections that leave the VPC so
 *   their packets route through the main table (out of the primary ENI, whose address they are SNATed
 *   to) even when the pod's address lives on a secondary ENI.
 * - mangle PREROUTING: mark connections arriving on the primary ENI for a local address (node ports),
 *   and restore the mark on packets from pod veths so replies leave the way the request came in.
 * - filter FORWARD (ours first): drop pod traffic to IMDS (IPAMD_BLOCK_POD_IMDS, EKS's guidance), so
 *   a pod cannot take the node role's credentials. Host-network pods (ipamd too) send from the node
 *   itself (OUTPUT), never through a pod veth, and keep reaching it.
 * - filter INPUT (ours first): drop pod traffic to ipamd's own listeners when they are bound beyond
 *   loopback (metrics, introspection), so pods on this node cannot read them.
 */
import type { SnatConfig } from '../../lib/protocol/ipamd.js';

export const SNAT_CHAIN = 'AWS-SNAT-CHAIN-0';
export const CONNMARK_CHAIN = 'AWS-CONNMARK-CHAIN-0';
export const DEFAULT_CONNMARK = 0x80;
/** Chains ipamd owns outright (older releases used AWS-SNAT-CHAIN-1..n; those are removed). */
export const OWNED_CHAIN = /^AWS-(SNAT|CONNMARK)-CHAIN-\d+$/;
/** The instance metadata service (IPv4). */
export const IMDS_ADDRESS = '169.254.169.254';

/** Rule specs per chain, without the leading "-A <chain>". */
export interface TableRules {
  /** Rules ipamd keeps in built-in chains (shared with kube-proxy and others). */
  builtin: Record<string, string[]>;
  /** Built-in chains whose ipamd rules go in front of the others when written (drops must come first). */
  atTop?: readonly string[];
  /** Chains ipamd owns; their whole content. */
  owned: Record<string, string[]>;
}

export interface DesiredIptables {
  nat: TableRules;
  mangle: TableRules;
  filter: TableRules;
}

export interface NodeRulesInput {
  primaryIf: string;
  primaryIp: string;
  vpcCidrs: string[];
  snat: SnatConfig;
  vethPrefix: string;
  nodePortSupport: boolean;
  mark?: number;
  /** Drop traffic from pod veths to IMDS (IPAMD_BLOCK_POD_IMDS). */
  blockPodImds?: boolean;
  /** TCP ports of ipamd's listeners that are bound beyond loopback: closed to pod veths. */
  podClosedTcpPorts?: readonly number[];
}

const hex = (n: number) => `0x${n.toString(16)}`;

export function desiredNodeIptables(input: NodeRulesInput): DesiredIptables {
  const mark = input.mark ?? DEFAULT_CONNMARK;
  const markMask = `${hex(mark)}/${hex(mark)}`;
  const nat: TableRules = { builtin: {}, owned: {} };
  const mangle: TableRules = { builtin: {}, owned: {} };
  const filter: TableRules = { builtin: {}, owned: {} };
  const vethMatch = `-i ${input.vethPrefix}+`;

  if (input.snat.enabled) {
    const excluded = input.snat.excludeCidrs.filter((c) => !input.vpcCidrs.includes(c));
    const randomize = { none: '', hashrandom: ' --random', prng: ' --random-fully' }[input.snat.randomize];
    nat.builtin.POSTROUTING = [`-m comment --comment "AWS SNAT CHAIN" -j ${SNAT_CHAIN}`];
    nat.owned[SNAT_CHAIN] = [
      ...input.vpcCidrs.map((c) => `-d ${c} -m comment --comment "AWS SNAT CHAIN" -j RETURN`),
      ...excluded.map((c) => `-d ${c} -m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN`),
      `! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source ${input.primaryIp}${randomize}`,
    ];
    nat.builtin.PREROUTING = [
      `${vethMatch} -m comment --comment "AWS, outbound connections" -j ${CONNMARK_CHAIN}`,
      `-m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --nfmask ${hex(mark)} --ctmask ${hex(mark)}`,
    ];
    nat.owned[CONNMARK_CHAIN] = [
      ...input.vpcCidrs.map((c) => `-d ${c} -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j RETURN`),
      ...excluded.map((c) => `-d ${c} -m comment --comment "AWS CONNMARK CHAIN, EXCLUDED CIDR" -j RETURN`),
      `-m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark ${markMask}`,
    ];
  }

  const prerouting: string[] = [];
  if (input.nodePortSupport) {
    prerouting.push(
      `-i ${input.primaryIf} -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark ${markMask}`,
    );
  }
  if (input.nodePortSupport || input.snat.enabled) {
    prerouting.push(
      `${vethMatch} -m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask ${hex(mark)} --ctmask ${hex(mark)}`,
    );
  }
  if (prerouting.length > 0) mangle.builtin.PREROUTING = prerouting;

  if (input.blockPodImds) {
    filter.builtin.FORWARD = [
      `-d ${IMDS_ADDRESS}/32 ${vethMatch} -m comment --comment "AWS, block pods from IMDS" -j DROP`,
    ];
  }
  const ports = [...new Set(input.podClosedTcpPorts ?? [])].sort((a, b) => a - b);
  if (ports.length > 0) {
    filter.builtin.INPUT = ports.map(
      (p) =>
        `${vethMatch} -p tcp -m tcp --dport ${p} -m comment --comment "AWS, ipamd listener closed to pods" -j DROP`,
    );
  }
  if (Object.keys(filter.builtin).length > 0) filter.atTop = Object.keys(filter.builtin);
  return { nat, mangle, filter };
}

/** Whether the `fwmark <mark>/<mark> lookup main` rule is wanted (the reference's condition). */
export function wantsMainTableMarkRule(input: Pick<NodeRulesInput, 'snat' | 'nodePortSupport'>): boolean {
  return input.nodePortSupport || input.snat.enabled;
}
