/**
 * Which subnet a new ENI goes into, and which subnets are backing off after running out of addresses.
 * Candidates: the ENIConfig subnet under custom networking; otherwise the primary ENI's subnet plus,
 * with ENABLE_SUBNET_DISCOVERY, the subnets of the VPC and AZ tagged kubernetes.io/role/cni=1.
 * A full subnet (InsufficientFreeAddressesInSubnet / InsufficientCidrBlocks) is skipped for an
 * exponentially growing time so ipamd does not hammer EC2 with calls that cannot succeed.
 */
import type { Ec2Api } from '../aws/ec2.js';
import type { Logger } from '../log.js';

export const CNI_SUBNET_TAG = 'kubernetes.io/role/cni';

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

  /** Re-reads the tagged subnets (discovery only, at most once per refresh period). */
  async refresh(force = false): Promise<void> {
    const d = this.opts.discovery;
    if (!d || this.custom) return;
    if (!force && !this.stale && this.now() - this.refreshedAt < (this.opts.refreshMs ?? 60_000)) return;
    const tagged = await this.opts.ec2.describeSubnets([
      { Name: 'vpc-id', Values: [d.vpcId] },
      { Name: 'availability-zone', Values: [d.availabilityZone] },
      { Name: `tag:${CNI_SUBNET_TAG}`, Values: ['1'] },
    ]);
    const primary = this.opts.primary;
    const known = new Map(tagged.map((s) => [s.id, s.availableAddresses]));
    this.candidates = [
      {
        id: primary.subnetId,
        securityGroups: primary.securityGroups,
        available: known.get(primary.subnetId) ?? -1,
      },
      ...tagged
        .filter((s) => s.id !== primary.subnetId)
        .map((s) => ({ id: s.id, securityGroups: primary.securityGroups, available: s.availableAddresses })),
    ];
    this.refreshedAt = this.now();
    this.stale = false;
    this.opts.log.debug({ subnets: this.candidates }, 'subnet candidates refreshed');
  }

  /** Refreshes only after a subnet ran full (cheap to call on every pool tick). */
  async refreshIfStale(): Promise<void> {
    if (this.stale && this.opts.discovery && !this.custom) await this.refresh();
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
