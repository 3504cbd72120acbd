/**
 * Which subnet a new ENI goes into, and which subnets are backing off after running out of addresses.
 * Candidates: the ENIConfig subnet under custom networking; otherwise the primary ENI's subnet (unless
 * tagged kubernetes.io/role/cni=0) plus, with ENABLE_SUBNET_DISCOVERY, the subnets of the VPC and AZ
 * that subnetUsable() admits (the reference's v1.22+ tag rules, scoped by CLUSTER_NAME).
 * A full subnet (InsufficientFreeAddressesInSubnet / InsufficientCidrBlocks) is skipped for an
 * exponentially growing time so ipamd does not hammer EC2 with calls that cannot succeed.
 */
import type { Ec2Api } from '../aws/ec2.js';
import type { Logger } from '../log.js';

export const CNI_SUBNET_TAG = 'kubernetes.io/role/cni';
/** `<prefix><CLUSTER_NAME>` on a subnet reserves it for the clusters it names (v1.22+). */
export const CLUSTER_SUBNET_TAG_PREFIX = 'cni.networking.k8s.aws/cluster/';

/**
 * The reference's (v1.22+) rule for a subnet ENIs may go to: kubernetes.io/role/cni=0 excludes it,
 * the node's own subnet included; another subnet needs the tag (any other value); a subnet carrying
 * cni.networking.k8s.aws/cluster/<name> tags serves only those clusters (checked with CLUSTER_NAME).
 * The node's own subnet without the role tag is always usable.
 */
export function subnetUsable(
  tags: Record<string, string>,
  isPrimarySubnet: boolean,
  clusterName: string | null,
): boolean {
  const role = tags[CNI_SUBNET_TAG];
  if (role === '0') return false;
  if (role === undefined || role === '') return isPrimarySubnet;
  if (!clusterName) return true;
  const clusterTags = Object.keys(tags).filter((k) => k.startsWith(CLUSTER_SUBNET_TAG_PREFIX));
  return clusterTags.length === 0 || clusterTags.includes(CLUSTER_SUBNET_TAG_PREFIX + clusterName);
}

/** Whether an attached ENI's subnet takes no new pods (the reference's IsSubnetExcluded): role=0, or reserved for other clusters. */
export function subnetExcluded(tags: Record<string, string>, clusterName: string | null): boolean {
  const role = tags[CNI_SUBNET_TAG];
  if (role === undefined || role === '') return false;
  return !subnetUsable(tags, false, clusterName);
}

/**
 * Of `subnetIds` (the attached ENIs' subnets), those subnetExcluded() names: no new pod address goes there.
 * One DescribeSubnets; when it fails the answer is "none excluded" (the reference proceeds too).
 */
export async function excludedSubnets(
  ec2: Ec2Api,
  subnetIds: string[],
  clusterName: string | null,
  log: Logger,
): Promise<Set<string>> {
  const ids = [...new Set(subnetIds)];
  if (ids.length === 0) return new Set();
  try {
    const found = await ec2.describeSubnets([{ Name: 'subnet-id', Values: ids }]);
    const out = new Set(found.filter((sn) => subnetExcluded(sn.tags, clusterName)).map((sn) => sn.id));
    if (out.size > 0)
      log.warn({ subnets: [...out] }, `subnets excluded by their ${CNI_SUBNET_TAG} / cluster tags`);
    return out;
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot read subnet tags; no subnet is treated as excluded');
    return new Set();
  }
}

interface Candidate {
  id: string;
  securityGroups: string[];
  /** Free addresses per the last DescribeSubnets (unknown = -1). */
  available: number;
}

interface Backoff {
  failures: number;
  until: number;
  reason: string;
}

export interface SubnetPickerOptions {
  primary: { subnetId: string; securityGroups: string[] };
  customSubnet: { subnetId: string; securityGroups: string[] } | null;
  discovery: { vpcId: string; availabilityZone: string } | null;
  /** CLUSTER_NAME: subnets reserved for other clusters (cni.networking.k8s.aws/cluster/...) are skipped. */
  clusterName?: string | null;
  /** Discovery off: the node's subnet is still checked for kubernetes.io/role/cni=0 in this VPC. */
  vpc?: { vpcId: string; availabilityZone: string } | null;
  ec2: Ec2Api;
  log: Logger;
  now?: () => number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** How long a DescribeSubnets answer is reused. */
  refreshMs?: number;
}

export class SubnetPicker {
  private candidates: Candidate[];
  /** The ENIConfig's subnet; replaced at run time when the cluster's ENIConfig changes. */
  private custom: { subnetId: string; securityGroups: string[] } | null;
  /** Why new ENIs must wait whatever the subnets say (the node's ENIConfig is missing or invalid). */
  private held: string | null = null;
  private readonly backoff = new Map<string, Backoff>();
  private refreshedAt = Number.NEGATIVE_INFINITY;
  /** Set when a subnet ran full: the tagged set may have changed, look again before the next attempt. */
  private stale = true;
  private readonly now: () => number;

  constructor(private readonly opts: SubnetPickerOptions) {
    this.now = opts.now ?? Date.now;
    this.custom = opts.customSubnet;
    const first = opts.customSubnet ?? opts.primary;
    this.candidates = [{ id: first.subnetId, securityGroups: first.securityGroups, available: -1 }];
  }

  /** Re-reads the VPC's subnets in the zone and their tags (at most once per refresh period). */
  async refresh(force = false): Promise<void> {
    const where = this.opts.discovery ?? this.opts.vpc ?? null;
    if (!where || this.custom) return;
    if (!force && !this.stale && this.now() - this.refreshedAt < (this.opts.refreshMs ?? 60_000)) return;
    const primary = this.opts.primary;
    const clusterName = this.opts.clusterName ?? null;
    // v1.22+: every subnet of the zone is read and judged by its tags (role=0 excludes, also the node's).
    const subnets = await this.opts.ec2.describeSubnets([
      { Name: 'vpc-id', Values: [where.vpcId] },
      { Name: 'availability-zone', Values: [where.availabilityZone] },
      ...(this.opts.discovery ? [] : [{ Name: 'subnet-id', Values: [primary.subnetId] }]),
    ]);
    const own = subnets.find((sn) => sn.id === primary.subnetId);
    const primaryUsable = !own || subnetUsable(own.tags, true, clusterName);
    const others = this.opts.discovery
      ? subnets.filter((sn) => sn.id !== primary.subnetId && subnetUsable(sn.tags, false, clusterName))
      : [];
    this.candidates = [
      ...(primaryUsable
        ? [
            {
              id: primary.subnetId,
              securityGroups: primary.securityGroups,
              available: own?.availableAddresses ?? -1,
            },
          ]
        : []),
      ...others.map((sn) => ({
        id: sn.id,
        securityGroups: primary.securityGroups,
        available: sn.availableAddresses,
      })),
    ];
    if (!primaryUsable) {
      this.opts.log.warn(
        { subnetId: primary.subnetId },
        `the node's subnet is tagged ${CNI_SUBNET_TAG}=0 (or reserved for another cluster): no ENI goes there`,
      );
    }
    this.refreshedAt = this.now();
    this.stale = false;
    this.opts.log.debug({ subnets: this.candidates }, 'subnet candidates refreshed');
  }

  /** Refreshes only after a subnet ran full (cheap to call on every pool tick). */
  async refreshIfStale(): Promise<void> {
    if (this.stale && (this.opts.discovery || this.opts.vpc) && !this.custom) await this.refresh();
  }

  /** Custom networking: the subnet and groups for the NEXT ENI (ENIs already attached stay put). */
  setCustomSubnet(next: { subnetId: string; securityGroups: string[] }): void {
    const prev = this.custom;
    if (prev?.subnetId === next.subnetId && prev.securityGroups.join() === next.securityGroups.join()) return;
    this.custom = { subnetId: next.subnetId, securityGroups: [...next.securityGroups] };
    this.candidates = [{ id: next.subnetId, securityGroups: this.custom.securityGroups, available: -1 }];
    this.opts.log.info({ from: prev, to: this.custom }, 'new ENIs go to a changed subnet / security groups');
  }

  /** Holds new ENIs with a reason (null releases them); a held picker picks nothing. */
  hold(reason: string | null): void {
    if (reason === this.held) return;
    if (reason) this.opts.log.warn({ reason }, 'new ENIs held');
    else this.opts.log.info({ was: this.held }, 'new ENIs no longer held');
    this.held = reason;
  }

  isBlocked(subnetId: string): boolean {
    const b = this.backoff.get(subnetId);
    return b !== undefined && b.until > this.now();
  }

  /** The usable subnet with the most free addresses, or null when all are backing off. */
  pick(): { subnetId: string; securityGroups: string[] } | null {
    if (this.held) return null;
    const usable = this.candidates.filter((c) => !this.isBlocked(c.id));
    usable.sort((a, b) => b.available - a.available);
    const c = usable[0];
    return c ? { subnetId: c.id, securityGroups: c.securityGroups } : null;
  }

  /** Why no subnet can take a new ENI right now, or null. */
  blockedReason(): string | null {
    if (this.held) return this.held;
    if (this.pick()) return null;
    const now = this.now();
    if (this.candidates.length === 0) {
      return `no subnet may take a new ENI: the node's is tagged ${CNI_SUBNET_TAG}=0 and no other is tagged for this cluster`;
    }
    return this.candidates
      .map((c) => {
        const b = this.backoff.get(c.id)!;
        return `${b.reason} (retrying in ${Math.ceil((b.until - now) / 1000)}s)`;
      })
      .join('; ');
  }

  markFull(subnetId: string, reason: string): void {
    const prev = this.backoff.get(subnetId);
    const failures = (prev?.failures ?? 0) + 1;
    const base = this.opts.backoffBaseMs ?? 2_000;
    const delay = Math.min(this.opts.backoffMaxMs ?? 300_000, base * 2 ** (failures - 1));
    this.backoff.set(subnetId, { failures, until: this.now() + delay, reason });
    this.stale = true;
    const c = this.candidates.find((x) => x.id === subnetId);
    if (c) c.available = 0;
    this.opts.log.warn({ subnetId, failures, backoffMs: delay }, `${reason}; backing off`);
  }

  markOk(subnetId: string): void {
    if (this.backoff.delete(subnetId)) this.opts.log.info({ subnetId }, 'subnet has addresses again');
  }
}
