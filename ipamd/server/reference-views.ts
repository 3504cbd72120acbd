/**
 * The introspection documents of the AWS VPC CNI v1.23 (pkg/ipamd/introspect.go), in its JSON shapes,
 * so aws-cni-support.sh, the EKS log collector and scripts that read them keep working:
 *   /v1/enis                       {"<network card>": {TotalIPs, AssignedIPs, ENIs: {<id>: ENI}}}
 *   /v1/eni-configs                the node's ENIConfig name (a JSON string)
 *   /v1/networkutils-env-settings  the host-networking settings in effect
 *   /v1/ipamd-env-settings         the pool settings in effect
 * Field names are Go's (exported struct fields); container ids and interface names are blanked as the
 * reference blanks them. ipamd's own richer views stay under /v1/vpc-cni/.
 */
import type { Config } from '../config.js';
import type { Datastore } from '../datastore/datastore.js';

/** Go's zero time.Time as encoding/json writes it. */
const ZERO_TIME = '0001-01-01T00:00:00Z';
const MAIN_TABLE = 254;
/** The reference's snatType enum (sequential, --random, --random-fully) as JSON numbers. */
const SNAT_TYPE = { none: 0, hashrandom: 1, prng: 2 } as const;

interface AddressInfo {
  Address: string;
  IPAMKey: { networkName: string; containerID: string; ifName: string };
  IPAMMetadata: { k8sPodNamespace?: string; k8sPodName?: string };
  AssignedTime: string;
  UnassignedTime: string;
}

interface CidrInfo {
  Cidr: { IP: string; Mask: string };
  IPAddresses: Record<string, AddressInfo>;
  IsPrefix: boolean;
  AddressFamily: string;
}

/** A Go net.IPMask: raw bytes, which encoding/json writes as base64. */
function maskBase64(bits: number): string {
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const b = Buffer.alloc(4);
  b.writeUInt32BE(mask);
  return b.toString('base64');
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
}

/** `/v1/enis`: ipamd manages network card 0 only. */
export function referenceEnis(ds: Datastore, opts: { cooldownMs: number }) {
  const assigned = new Map(ds.assignments().map((a) => [a.address, a.assignment]));
  const cooling = new Map(ds.cooldowns().map((c) => [c.address, c.until]));
  const address = (ip: string): AddressInfo | null => {
    const a = assigned.get(ip);
    if (a) {
      return {
        Address: ip,
        IPAMKey: { networkName: a.network, containerID: '', ifName: '' },
        IPAMMetadata: {
          ...(a.podNamespace ? { k8sPodNamespace: a.podNamespace } : {}),
          ...(a.podName ? { k8sPodName: a.podName } : {}),
        },
        AssignedTime: a.assignedAt,
        UnassignedTime: ZERO_TIME,
      };
    }
    const until = cooling.get(ip);
    if (until === undefined) return null;
    return {
      Address: ip,
      IPAMKey: { networkName: '', containerID: '', ifName: '' },
      IPAMMetadata: {},
      AssignedTime: ZERO_TIME,
      UnassignedTime: new Date(until - opts.cooldownMs).toISOString(),
    };
  };
  const cidr = (block: string, isPrefix: boolean): CidrInfo => {
    const [ip, len] = block.split('/') as [string, string];
    const bits = Number(len);
    const base = ipToInt(ip);
    const addresses: Record<string, AddressInfo> = {};
    for (const a of [...assigned.keys(), ...cooling.keys()]) {
      const inside = bits === 32 ? a === ip : ipToInt(a) >>> (32 - bits) === base >>> (32 - bits);
      const info = inside ? address(a) : null;
      if (info) addresses[a] = info;
    }
    return {
      Cidr: { IP: ip, Mask: maskBase64(bits) },
      IPAddresses: addresses,
      IsPrefix: isPrefix,
      AddressFamily: '4',
    };
  };
  let totalIps = 0;
  let assignedIps = 0;
  const enis: Record<string, unknown> = {};
  for (const s of ds.eniStats()) {
    const e = s.eni;
    totalIps += s.total;
    assignedIps += s.assigned;
    const cidrs: Record<string, CidrInfo> = {};
    for (const ip of e.secondaryIps) cidrs[`${ip}/32`] = cidr(`${ip}/32`, false);
    for (const p of e.prefixes) cidrs[p] = cidr(p, true);
    enis[e.id] = {
      ID: e.id,
      IsPrimary: e.isPrimary,
      IsTrunk: false,
      IsEFA: false,
      DeviceNumber: e.deviceNumber,
      AvailableIPv4Cidrs: cidrs,
      IPv6Cidrs: {},
      IsExcludedForPodIPs: !e.forPods,
      RouteTableID: e.isPrimary ? MAIN_TABLE : e.deviceNumber + 1,
      SubnetID: e.subnetId,
    };
  }
  return { '0': { TotalIPs: totalIps, AssignedIPs: assignedIps, ENIs: enis } };
}

/** `/v1/networkutils-env-settings` (networkutils.GetConfigForDebug). */
export function networkutilsEnvSettings(cfg: Config) {
  const orNull = (a: string[]) => (a.length > 0 ? a : null);
  return {
    AWS_VPC_K8S_CNI_CONNMARK: cfg.connmark,
    AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: orNull(cfg.snat.excludeCidrs),
    AWS_VPC_K8S_CNI_EXTERNALSNAT: !cfg.snat.enabled,
    AWS_EXTERNAL_SERVICE_CIDRS: orNull(cfg.externalServiceCidrs),
    AWS_VPC_ENI_MTU: cfg.eniMtu,
    AWS_VPC_K8S_CNI_VETHPREFIX: cfg.vethPrefix,
    AWS_VPC_CNI_NODE_PORT_SUPPORT: cfg.nodePortSupport,
    AWS_VPC_K8S_CNI_RANDOMIZESNAT: SNAT_TYPE[cfg.snat.randomize],
  };
}

/** `/v1/ipamd-env-settings` (ipamd.GetConfigForDebug). */
export function ipamdEnvSettings(cfg: Config) {
  return {
    WARM_IP_TARGET: cfg.warmIpTarget,
    WARM_ENI_TARGET: cfg.warmEniTarget,
    AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: cfg.customNetworking,
    AWS_MANAGE_ENIS_NON_SCHEDULABLE: cfg.manageEnisNonSchedulable,
    ENABLE_SUBNET_DISCOVERY: cfg.subnetDiscovery,
  };
}
