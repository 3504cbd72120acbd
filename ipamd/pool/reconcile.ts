/**
 * Reconciliation against IMDS (every 60 s by default): compare the exact sets of ENIs, secondary IPs and
 * prefixes IMDS reports with the datastore's. Differences are confirmed with one EC2 describe of this
 * instance's ENIs before anything changes (IMDS lags behind EC2), and an address assigned to a pod is
 * never dropped, only reported.
 */
import type { Ec2Api, Ec2Eni } from '../aws/ec2.js';
import type { Imds, ImdsEni } from '../aws/imds.js';
import type { Datastore, EniInfo } from '../datastore/datastore.js';
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
  /** MANAGE_UNTAGGED_ENI (default true): adopt attached ENIs without this instance's tag. */
  manageUntagged?: boolean;
}

export interface ReconcileReport {
  enisAdded: string[];
  enisRemoved: string[];
  addressesAdded: string[];
  addressesRemoved: string[];
  /** Assigned addresses EC2 no longer shows on the ENI: kept, reported. */
  assignedButGone: string[];
}

function setEq(a: Set<string>, b: string[]): boolean {
  return a.size === b.length && b.every((x) => a.has(x));
}

function differs(ds: Datastore, seen: ImdsEni[], unmanaged: Map<string, number>): boolean {
  const seenIds = new Set(seen.map((e) => e.id));
  if ([...unmanaged.keys()].some((id) => !seenIds.has(id))) return true;
  const managedSeen = seen.filter((e) => !unmanaged.has(e.id));
  const known = ds.allEnis();
  if (known.length !== managedSeen.length) return true;
  for (const e of managedSeen) {
    const rec = ds.getEni(e.id);
    if (!rec) return true;
    if (!setEq(rec.secondaryIps, e.secondaryIps) || !setEq(rec.prefixes, e.prefixes)) return true;
  }
  return false;
}

export async function reconcile(d: ReconcileDeps): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    enisAdded: [],
    enisRemoved: [],
    addressesAdded: [],
    addressesRemoved: [],
    assignedButGone: [],
  };
  const seen = await d.imds.enis();
  if (!differs(d.ds, seen, d.unmanaged)) return report;

  // IMDS says something changed: EC2 is the authority on what actually did.
  const attached = await d.ec2.findNetworkInterfaces([
    { Name: 'attachment.instance-id', Values: [d.instanceId] },
  ]);
  const truth = new Map<string, Ec2Eni>(attached.map((e) => [e.id, e]));
  const imdsById = new Map(seen.map((e) => [e.id, e]));

  for (const eni of d.ds.allEnis()) {
    const t = truth.get(eni.id);
    if (t) continue;
    if (d.ds.removeEni(eni.id)) {
      report.enisRemoved.push(eni.id);
      reconcileCount.inc({ fn: 'eni_removed' });
      await d.host.teardownEni(eni).catch(() => undefined);
      d.log.warn({ eniId: eni.id }, 'reconcile: ENI is no longer attached; forgot it');
    } else {
      const { removed } = d.ds.removeIps(eni.id, [...eni.secondaryIps]);
      d.ds.removePrefixes(eni.id, [...eni.prefixes]);
      d.log.error(
        { eniId: eni.id, freedFromPool: removed.length },
        'reconcile: ENI is no longer attached but pods still hold its addresses; keeping them until the pods are deleted',
      );
    }
  }

  for (const id of [...d.unmanaged.keys()]) if (!truth.has(id)) d.unmanaged.delete(id);

  for (const [id, t] of truth) {
    const dev = t.attachment?.deviceIndex ?? -1;
    const rule = { instanceId: d.instanceId, manageUntagged: d.manageUntagged ?? true };
    if (!isManaged({ tags: t.tags, isPrimary: dev === 0 }, rule)) {
      d.unmanaged.set(id, dev);
      continue;
    }
    let rec = d.ds.getEni(id);
    if (!rec) {
      const fromImds = imdsById.get(id);
      if (!fromImds) continue; // not in IMDS yet: next round
      const info: EniInfo = {
        id,
        mac: t.mac,
        deviceNumber: fromImds.deviceNumber,
        subnetId: t.subnetId,
        subnetCidr: fromImds.subnetCidr,
        primaryIp: t.primaryIp,
        attachmentId: t.attachment?.id ?? null,
        isPrimary: fromImds.deviceNumber === 0,
        forPods: fromImds.deviceNumber !== 0 || d.primaryForPods,
      };
      await d.host.setupEni(info);
      rec = d.ds.addEni(info);
      report.enisAdded.push(id);
      reconcileCount.inc({ fn: 'eni_added' });
      d.log.warn(
        { eniId: id, deviceNumber: info.deviceNumber },
        'reconcile: found an attached ENI ipamd did not know',
      );
    }
    const newIps = t.secondaryIps.filter((ip) => !rec.secondaryIps.has(ip));
    const newPrefixes = t.prefixes.filter((p) => !rec.prefixes.has(p));
    d.ds.addIps(id, newIps);
    d.ds.addPrefixes(id, newPrefixes);
    report.addressesAdded.push(...newIps, ...newPrefixes);
    const goneIps = [...rec.secondaryIps].filter((ip) => !t.secondaryIps.includes(ip));
    const gonePrefixes = [...rec.prefixes].filter((p) => !t.prefixes.includes(p));
    const r1 = d.ds.removeIps(id, goneIps);
    const r2 = d.ds.removePrefixes(id, gonePrefixes);
    report.addressesRemoved.push(...r1.removed, ...r2.removed);
    report.assignedButGone.push(...r1.kept, ...r2.kept);
  }

  if (report.addressesAdded.length) reconcileCount.inc({ fn: 'ip_added' }, report.addressesAdded.length);
  if (report.addressesRemoved.length)
    reconcileCount.inc({ fn: 'ip_removed' }, report.addressesRemoved.length);
  const changed =
    report.enisAdded.length +
    report.enisRemoved.length +
    report.addressesAdded.length +
    report.addressesRemoved.length;
  if (changed > 0) d.log.warn({ ...report }, 'reconcile: datastore corrected from EC2');
  if (report.assignedButGone.length > 0) {
    d.log.error(
      { addresses: report.assignedButGone },
      'reconcile: EC2 no longer has addresses that pods hold; kept until the pods are deleted',
    );
  }
  return report;
}
