/**
 * What ipamd learns about its node from the API server: max pods (the kubelet's pod capacity) and,
 * under custom networking, the ENIConfig for its secondary ENIs. The ENIConfig is named, as in the
 * reference, by the node's vpc.amazonaws.com/externalEniConfig label, else its annotation
 * (ENI_CONFIG_ANNOTATION_DEF), else its label (ENI_CONFIG_LABEL_DEF); with none of those, the
 * ENIConfig named after the node's availability zone, and failing that the one named "default".
 * Every field read is validated.
 */
import type { K8sAccess } from './access.js';

export const DEFAULT_ENI_CONFIG_LABEL = 'k8s.amazonaws.com/eniConfig';
export const DEFAULT_ENI_CONFIG_ANNOTATION = 'k8s.amazonaws.com/eniConfig';
const EXTERNAL_ENI_CONFIG_LABEL = 'vpc.amazonaws.com/externalEniConfig';
const ZONE_LABEL = 'topology.kubernetes.io/zone';
const DEFAULT_ENI_CONFIG_NAME = 'default';

export type EniConfigNameSource = 'external-label' | 'annotation' | 'label' | 'zone' | 'default';

const SUBNET_ID = /^subnet-[0-9a-f]{1,32}$/;
const SG_ID = /^sg-[0-9a-f]{1,32}$/;
// RFC 1123 subdomain: the names of cluster-scoped objects.
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface NodeContextOptions {
  nodeName: string;
  /** The instance's availability zone (IMDS), used when the node carries no zone label. */
  availabilityZone: string;
  /** Resolve the ENIConfig (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG); otherwise only max pods is read. */
  customNetworking: boolean;
  eniConfigLabel?: string;
  eniConfigAnnotation?: string;
}

export interface NodeContext {
  /** node.status.capacity.pods (or allocatable.pods); absent while the kubelet has not reported it. */
  maxPods?: number;
  eniConfigName?: string;
  /** Where the name came from, for the log. */
  eniConfigNameSource?: EniConfigNameSource;
  /** securityGroups is empty when the ENIConfig lists none: the primary ENI's groups apply (the reference's rule). */
  eniConfig?: { subnet: string; securityGroups: string[] };
  /** Cordoned (AWS_MANAGE_ENIS_NON_SCHEDULABLE decides whether ipamd still changes ENIs). */
  unschedulable?: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function stringMap(node: Obj, field: 'labels' | 'annotations', nodeName: string): Record<string, string> {
  const meta = node.metadata;
  if (meta === undefined) return {};
  if (!isObj(meta)) throw new Error(`node '${nodeName}': metadata is not an object`);
  const m = meta[field];
  if (m === undefined || m === null) return {};
  if (!isObj(m)) throw new Error(`node '${nodeName}': metadata.${field} is not a map`);
  return m as Record<string, string>;
}

/** A pod count from a resource quantity: kubelets report plain integers ("110"). */
function podQuantity(v: unknown, where: string, nodeName: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const s = typeof v === 'number' ? String(v) : v;
  if (typeof s !== 'string' || !/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 10_000) {
    throw new Error(`node '${nodeName}': ${where} ${JSON.stringify(v)} is not a pod count (1-10000)`);
  }
  return Number(s);
}

/** Cordoned: the kubelet's node.kubernetes.io/unschedulable:NoSchedule taint (what the reference checks). */
export function isUnschedulable(node: Obj): boolean {
  const taints = (node.spec as { taints?: unknown } | undefined)?.taints;
  if (!Array.isArray(taints)) return false;
  return taints.some(
    (t) =>
      t !== null &&
      typeof t === 'object' &&
      (t as Obj).key === 'node.kubernetes.io/unschedulable' &&
      (t as Obj).effect === 'NoSchedule',
  );
}

export function maxPodsOf(node: Obj, nodeName: string): number | undefined {
  const status = node.status;
  if (status === undefined || status === null) return undefined;
  if (!isObj(status)) throw new Error(`node '${nodeName}': status is not an object`);
  for (const field of ['capacity', 'allocatable'] as const) {
    const res = status[field];
    if (res === undefined || res === null) continue;
    if (!isObj(res)) throw new Error(`node '${nodeName}': status.${field} is not a map`);
    const pods = podQuantity(res.pods, `status.${field}.pods`, nodeName);
    if (pods !== undefined) return pods;
  }
  return undefined;
}

export interface EniConfigCandidate {
  name: string;
  source: EniConfigNameSource;
  /** Where the name came from, for messages ("label k8s.amazonaws.com/eniConfig"). */
  from: string;
}

/** The ENIConfig names to try, in order: an explicit one alone, else the zone's then "default". */
export function eniConfigCandidates(
  node: Obj,
  opts: Pick<NodeContextOptions, 'nodeName' | 'availabilityZone' | 'eniConfigLabel' | 'eniConfigAnnotation'>,
): EniConfigCandidate[] {
  const annotations = stringMap(node, 'annotations', opts.nodeName);
  const labels = stringMap(node, 'labels', opts.nodeName);
  const annotationKey = opts.eniConfigAnnotation ?? DEFAULT_ENI_CONFIG_ANNOTATION;
  const labelKey = opts.eniConfigLabel ?? DEFAULT_ENI_CONFIG_LABEL;
  const explicit: [unknown, EniConfigNameSource, string][] = [
    [labels[EXTERNAL_ENI_CONFIG_LABEL], 'external-label', `label ${EXTERNAL_ENI_CONFIG_LABEL}`],
    [annotations[annotationKey], 'annotation', `annotation ${annotationKey}`],
    [labels[labelKey], 'label', `label ${labelKey}`],
  ];
  const found = explicit.find(([v]) => v !== undefined && v !== '');
  const candidates = found
    ? [{ name: found[0], source: found[1], from: found[2] }]
    : [
        labels[ZONE_LABEL]
          ? { name: labels[ZONE_LABEL] as unknown, source: 'zone' as const, from: `label ${ZONE_LABEL}` }
          : {
              name: opts.availabilityZone as unknown,
              source: 'zone' as const,
              from: 'the availability zone',
            },
        { name: DEFAULT_ENI_CONFIG_NAME as unknown, source: 'default' as const, from: 'the default' },
      ];
  return candidates.map((c) => {
    if (typeof c.name !== 'string' || c.name.length > 253 || !OBJECT_NAME.test(c.name)) {
      throw new Error(
        `node '${opts.nodeName}': ENIConfig name ${JSON.stringify(c.name)} from ${c.from} is not a valid object name`,
      );
    }
    return { name: c.name, source: c.source, from: c.from };
  });
}

/** Validates an ENIConfig object's spec: one subnet id and 1-16 security group ids. */
export function validateEniConfigObject(
  name: string,
  obj: unknown,
): { subnet: string; securityGroups: string[] } {
  if (!isObj(obj)) throw new Error(`ENIConfig '${name}' is not an object`);
  const spec = obj.spec;
  if (!isObj(spec)) throw new Error(`ENIConfig '${name}' has no spec`);
  if (spec.subnet === undefined || spec.subnet === null || spec.subnet === '') {
    throw new Error(`ENIConfig '${name}' has no spec.subnet`);
  }
  if (typeof spec.subnet !== 'string' || !SUBNET_ID.test(spec.subnet)) {
    throw new Error(
      `ENIConfig '${name}': spec.subnet ${JSON.stringify(spec.subnet)} is not a subnet id (subnet-...)`,
    );
  }
  const groups = spec.securityGroups;
  // Optional in the CRD: without it, secondary ENIs get the primary ENI's security groups.
  if (groups === undefined || groups === null) return { subnet: spec.subnet, securityGroups: [] };
  if (!Array.isArray(groups) || groups.length > 16) {
    throw new Error(`ENIConfig '${name}': spec.securityGroups lists more than 16 security groups (sg-...)`);
  }
  for (const g of groups) {
    if (typeof g !== 'string' || !SG_ID.test(g)) {
      throw new Error(
        `ENIConfig '${name}': spec.securityGroups entry ${JSON.stringify(g)} is not a security group id (sg-...)`,
      );
    }
  }
  return { subnet: spec.subnet, securityGroups: [...(groups as string[])] };
}

/** Reads and validates the node (and its ENIConfig under custom networking). Throws with a specific message. */
export async function readNodeContext(access: K8sAccess, opts: NodeContextOptions): Promise<NodeContext> {
  const node = await access.readNode(opts.nodeName);
  if (node === null) {
    throw new Error(
      `node '${opts.nodeName}' not found in the API server (${access.server}); MY_NODE_NAME must be this node's name`,
    );
  }
  if (!isObj(node)) throw new Error(`node '${opts.nodeName}': the API server returned a non-object`);
  const ctx: NodeContext = {};
  const maxPods = maxPodsOf(node, opts.nodeName);
  if (maxPods !== undefined) ctx.maxPods = maxPods;
  if (isUnschedulable(node)) ctx.unschedulable = true;
  if (!opts.customNetworking) return ctx;

  const candidates = eniConfigCandidates(node, opts);
  for (const c of candidates) {
    const obj = await access.readEniConfig(c.name);
    if (obj === null) continue;
    ctx.eniConfigName = c.name;
    ctx.eniConfigNameSource = c.source;
    ctx.eniConfig = validateEniConfigObject(c.name, obj);
    return ctx;
  }
  const [first, ...rest] = candidates;
  const also = rest.length > 0 ? ` (nor ${rest.map((c) => `'${c.name}'`).join(', ')})` : '';
  throw new Error(
    `ENIConfig '${first?.name}' not found${also}, named by ${first?.from} of node '${opts.nodeName}': create it, or set the node's ${opts.eniConfigLabel ?? DEFAULT_ENI_CONFIG_LABEL} label to an existing ENIConfig`,
  );
}
