/**
 * Reconciliation against IMDS (every 60 s by default): compare the exact sets of ENIs, secondary IPs and
 * prefixes IMDS reports with the datastore's. Differences are confirmed with one EC2 describe of this
 * instance's ENIs before anything changes. Neither source alone is proof that something is gone: IMDS
 * lags behind EC2, and EC2's Describe does not show a new ENI for a while (eventual consistency).
 *  - An ENI IMDS lists is kept whatever Describe says, nothing of it stripped; one ipamd knows only
 *    from IMDS (found at a restart) hands out none of its free addresses until EC2 shows it.
 *  - An ENI both sources omit is forgotten only when they still agree a consistency window later.
 *  - A free address leaves the pool when both EC2 and IMDS omit it; an address a pod holds never
 *    leaves before the pod's own release (it is reported, and held unbacked).
 */
import type { Ec2Api, Ec2Eni } from '../aws/ec2.js';
import type { Imds, ImdsEni } from '../aws/imds.js';
import type { Datastore, EniInfo, EniRecord } from '../datastore/datastore.js';
import type { Logger } from '../log.js';
import { reconcileCount } from '../metrics.js';
import type { HostNetwork } from './executor.js';
import { isManaged } from './ownership.js';

export interface ReconcileDeps {
  imds: Imds;
  ec2: Ec2Api;
  ds: Datastore;
  host: HostNetwork;
  log: Logger;
  instanceId: string;
  /** Unmanaged ENIs by id -> device number; updated here when ENIs come and go. */
  unmanaged: Map<string, number>;
  /** false under custom networking: the primary ENI's addresses are not for pods. */
  primaryForPods: boolean;
  /** How long EC2 and IMDS must keep agreeing that an ENI is gone before it is forgotten. */
  consistencyWindowMs: number;
  now?: () => number;
  /** MANAGE_UNTAGGED_ENI (default true): adopt attached ENIs without this instance's tag. */
  manageUntagged?: boolean;
}

export interface ReconcileReport {
  enisAdded: string[];
  enisRemoved: string[];
  /** ENIs EC2 now shows, after ipamd held them on IMDS's word alone. */
  enisConfirmed: string[];
  /** ENIs ipamd keeps although EC2 does not show them (IMDS lists them, or the window is not over). */
  enisUnconfirmed: string[];
  addressesAdded: string[];
  addressesRemoved: string[];
  /** Assigned addresses EC2 no longer shows on the ENI: kept, reported. */
  assignedButGone: string[];
}

function setEq(a: Set<string>, b: string[]): boolean {
  return a.size === b.length && b.every((x) => a.has(x));
}

/** The datastore's record of an ENI both EC2 and IMDS describe (the one place this is built). */
export function eniInfoFrom(
  imds: ImdsEni,
  ec2: Pick<Ec2Eni, 'primaryIp' | 'subnetId' | 'attachment'> | null,
  primaryForPods: boolean,
): EniInfo {
  const isPrimary = imds.deviceNumber === 0;
  return {
    id: imds.id,
    mac: imds.mac,
    deviceNumber: imds.deviceNumber,
    subnetId: ec2?.subnetId ?? imds.subnetId,
    subnetCidr: imds.subnetCidr,
    primaryIp: ec2?.primaryIp ?? imds.primaryIp,
    attachmentId: ec2?.attachment?.id ?? null,
    isPrimary,
    forPods: !isPrimary || primaryForPods,
  };
}

export class Reconciler {
  /** ENIs both sources omitted, and since when (epoch ms). */
  private readonly goneSince = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly d: ReconcileDeps) {
    this.now = d.now ?? Date.now;
  }

  /** Whether a follow-up soon is worth it: something waits for EC2 or for the window to pass. */
  get pending(): boolean {
    return this.goneSince.size > 0 || this.d.ds.allEnis().some((e) => e.unconfirmed);
  }

  private differs(seen: ImdsEni[]): boolean {
    const { ds, unmanaged } = this.d;
    if (this.pending) return true;
    const seenIds = new Set(seen.map((e) => e.id));
    if ([...unmanaged.keys()].some((id) => !seenIds.has(id))) return true;
    const managedSeen = seen.filter((e) => !unmanaged.has(e.id));
    if (ds.allEnis().length !== managedSeen.length) return true;
    for (const e of managedSeen) {
      const rec = ds.getEni(e.id);
      if (!rec) return true;
      if (!setEq(rec.secondaryIps, e.secondaryIps) || !setEq(rec.prefixes, e.prefixes)) return true;
    }
    return false;
  }

  async run(): Promise<ReconcileReport> {
    const report: ReconcileReport = {
      enisAdded: [],
      enisRemoved: [],
      enisConfirmed: [],
      enisUnconfirmed: [],
      addressesAdded: [],
      addressesRemoved: [],
      assignedButGone: [],
    };
    const { imds, ec2, ds, unmanaged } = this.d;
    const seen = await imds.enis();
    if (!this.differs(seen)) return report;

    // IMDS says something changed: EC2 is asked, and each source's silence is weighed against the other's.
    const attached = await ec2.findNetworkInterfaces([
      { Name: 'attachment.instance-id', Values: [this.d.instanceId] },
    ]);
    const truth = new Map<string, Ec2Eni>(attached.map((e) => [e.id, e]));
    const imdsById = new Map(seen.map((e) => [e.id, e]));

    for (const eni of ds.allEnis()) {
      if (truth.has(eni.id)) this.goneSince.delete(eni.id);
      else await this.notShownByEc2(eni, imdsById.has(eni.id), report);
    }
    for (const id of [...unmanaged.keys()]) if (!truth.has(id) && !imdsById.has(id)) unmanaged.delete(id);
    for (const [id, t] of truth) await this.shownByEc2(id, t, imdsById.get(id), report);
    this.logReport(report);
    return report;
  }

  /** An ENI of the datastore EC2 does not show attached. */
  private async notShownByEc2(eni: EniRecord, inImds: boolean, report: ReconcileReport): Promise<void> {
    const { ds, log } = this.d;
    if (inImds) {
      // Attached as far as the node can tell: EC2's view lags (a new ENI) or is catching up with a
      // detach (then IMDS drops it soon too). Nothing changes; an ENI EC2 confirmed before stays usable.
      this.goneSince.delete(eni.id);
      if (eni.isPrimary) return;
      log.warn(
        { eniId: eni.id, unconfirmed: eni.unconfirmed },
        'reconcile: IMDS lists the ENI but EC2 does not show it; keeping it and its addresses',
      );
      report.enisUnconfirmed.push(eni.id);
      return;
    }
    const now = this.now();
    const since = this.goneSince.get(eni.id);
    if (since === undefined || now - since < this.d.consistencyWindowMs) {
      if (since === undefined) {
        this.goneSince.set(eni.id, now);
        log.warn(
          { eniId: eni.id, windowMs: this.d.consistencyWindowMs },
          'reconcile: neither IMDS nor EC2 shows the ENI; forgetting it if they still agree after the consistency window',
        );
      }
      ds.suspendEni(eni.id);
      report.enisUnconfirmed.push(eni.id);
      return;
    }
    // Proven gone: both sources agree, a window apart.
    this.goneSince.delete(eni.id);
    if (ds.removeEni(eni.id)) {
      report.enisRemoved.push(eni.id);
      reconcileCount.inc({ fn: 'eni_removed' });
      await this.d.host.teardownEni(eni).catch(() => undefined);
      log.warn({ eniId: eni.id }, 'reconcile: ENI is no longer attached; forgot it');
      return;
    }
    const { removed, held } = ds.forget(eni.id, { ips: [...eni.secondaryIps], prefixes: [...eni.prefixes] });
    report.addressesRemoved.push(...removed);
    report.assignedButGone.push(...held);
    log.error(
      { eniId: eni.id, freedFromPool: removed.length },
      'reconcile: ENI is no longer attached but pods still hold its addresses; keeping them until the pods are deleted',
    );
  }

  /** An ENI EC2 shows attached to this instance: adopt, confirm, and bring its addresses in line. */
  private async shownByEc2(
    id: string,
    t: Ec2Eni,
    fromImds: ImdsEni | undefined,
    report: ReconcileReport,
  ): Promise<void> {
    const { ds, log } = this.d;
    let rec = ds.getEni(id);
    const rule = { instanceId: this.d.instanceId, manageUntagged: this.d.manageUntagged ?? true };
    if (!isManaged({ tags: t.tags, isPrimary: (t.attachment?.deviceIndex ?? -1) === 0 }, rule)) {
      // Held on IMDS's word at start and not ipamd's after all: let go of it unless pods hold addresses.
      if (rec?.unconfirmed && !ds.removeEni(id)) {
        log.error(
          { eniId: id },
          "reconcile: ENI is not ipamd's to manage (no_manage, or untagged with MANAGE_UNTAGGED_ENI=false) but pods hold its addresses; keeping them",
        );
        return;
      }
      this.d.unmanaged.set(id, t.attachment?.deviceIndex ?? -1);
      return;
    }
    if (!fromImds && (!rec || rec.unconfirmed)) return; // not in IMDS yet: next round
    if (!rec) {
      const info = eniInfoFrom(fromImds!, t, this.d.primaryForPods);
      await this.d.host.setupEni(info);
      rec = ds.addEni(info);
      report.enisAdded.push(id);
      reconcileCount.inc({ fn: 'eni_added' });
      log.warn(
        { eniId: id, deviceNumber: info.deviceNumber },
        'reconcile: found an attached ENI ipamd did not know',
      );
    } else if (rec.unconfirmed) {
      const facts = { attachmentId: t.attachment?.id ?? null, primaryIp: t.primaryIp, subnetId: t.subnetId };
      await this.d.host.setupEni({ ...rec, ...facts });
      ds.confirmEni(id, facts);
      report.enisConfirmed.push(id);
      log.info({ eniId: id }, 'reconcile: EC2 shows the ENI; its free addresses are handed out again');
    }
    const newIps = t.secondaryIps.filter((ip) => !rec.secondaryIps.has(ip));
    const newPrefixes = t.prefixes.filter((p) => !rec.prefixes.has(p));
    ds.addIps(id, newIps);
    ds.addPrefixes(id, newPrefixes);
    report.addressesAdded.push(...newIps, ...newPrefixes);
    // Gone only when IMDS agrees with EC2 (IMDS may still show what EC2 took; then next round).
    const inImds = (list: string[] | undefined, x: string) => list?.includes(x) ?? false;
    const { removed, held } = ds.forget(id, {
      ips: [...rec.secondaryIps].filter(
        (ip) => !t.secondaryIps.includes(ip) && !inImds(fromImds?.secondaryIps, ip),
      ),
      prefixes: [...rec.prefixes].filter((p) => !t.prefixes.includes(p) && !inImds(fromImds?.prefixes, p)),
    });
    report.addressesRemoved.push(...removed);
    report.assignedButGone.push(...held);
  }

  private logReport(report: ReconcileReport): void {
    const { log } = this.d;
    if (report.addressesAdded.length) reconcileCount.inc({ fn: 'ip_added' }, report.addressesAdded.length);
    if (report.addressesRemoved.length)
      reconcileCount.inc({ fn: 'ip_removed' }, report.addressesRemoved.length);
    const changed =
      report.enisAdded.length +
      report.enisRemoved.length +
      report.enisConfirmed.length +
      report.addressesAdded.length +
      report.addressesRemoved.length;
    if (changed > 0) log.warn({ ...report }, 'reconcile: datastore corrected from EC2');
    if (report.assignedButGone.length > 0) {
      log.error(
        { addresses: report.assignedButGone },
        'reconcile: EC2 no longer has addresses that pods hold; kept until the pods are deleted',
      );
    }
  }
}
