/**
 * Replays the checkpoint into a freshly built datastore after a restart. A checkpointed assignment
 * survives until its holder is proven gone; one source's silence is no proof:
 *  - its address is on a known ENI: restored;
 *  - its ENI is known (attached per IMDS or EC2) but neither shows the address (yet): held for the pod
 *    all the same (unbacked), so the address can never be handed to another pod;
 *  - its ENI is known to neither IMDS nor EC2: dropped (IMDS lists every ENI attached to the node);
 *  - its pod's network namespace is visibly gone: dropped, the address cooling down as after a DEL,
 *    its host routing listed in `unwire` for the caller to remove (no DEL will come to do it);
 *  - another entry holds the address or the same attachment: dropped (logged).
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CheckpointData } from '../checkpoint.js';
import type { Logger } from '../log.js';
import type { Datastore } from './datastore.js';

export interface RestoreReport {
  restored: number;
  /** Restored although EC2 and IMDS do not show the address on its ENI (held unbacked). */
  held: number;
  dropped: { address: string; containerId: string; reason: string }[];
  /**
   * Dropped because the pod's namespace is gone (no DEL came): their host routing is still on the
   * node and must be removed before the address is handed out again.
   */
  unwire: { address: string; hostVethMac?: string }[];
}

/** A namespace path is gone when its directory is visible but the file is not. */
export function netnsGone(path: string): boolean {
  return existsSync(dirname(path)) && !existsSync(path);
}

export function restoreCheckpoint(
  ds: Datastore,
  data: CheckpointData,
  log: Logger,
  isGone: (netns: string) => boolean = netnsGone,
): RestoreReport {
  const report: RestoreReport = { restored: 0, held: 0, dropped: [], unwire: [] };
  // Cooldowns first: an address released before the restart stays out of use for its full period.
  for (const c of data.cooldowns) ds.setCooldown(c.address, c.until);
  for (const a of data.allocations) {
    const { address, eniId, ...assignment } = a;
    const drop = (reason: string) => {
      report.dropped.push({ address, containerId: a.containerId, reason });
      log.warn(
        { address, network: a.network, containerId: a.containerId, ifName: a.ifName, reason },
        'checkpoint entry dropped',
      );
    };
    const known = ds.hasAddress(address);
    if (!known && !ds.getEni(eniId)) {
      drop('the address no longer belongs to any ENI of this node');
      ds.startCooldown(address);
      continue;
    }
    if (a.netns && isGone(a.netns)) {
      drop(`the pod's network namespace ${a.netns} is gone`);
      report.unwire.push({ address, ...(a.hostVethMac ? { hostVethMac: a.hostVethMac } : {}) });
      // Peers elsewhere may still send to the address: it cools down as after the pod's DEL.
      ds.startCooldown(address);
      continue;
    }
    if (!known) {
      if (ds.hold(eniId, address, assignment)) {
        report.held++;
        report.restored++;
        log.warn(
          { address, eniId, network: a.network, containerId: a.containerId, ifName: a.ifName },
          'checkpoint entry kept: neither EC2 nor IMDS shows its address on its ENI (yet); held for the pod until its DEL',
        );
      } else {
        drop('duplicate entry for the same attachment');
      }
      continue;
    }
    const out = ds.assign(assignment, address);
    if (!out) {
      drop('another checkpoint entry already holds the address');
      continue;
    }
    if (!out.fresh) {
      drop('duplicate entry for the same attachment');
      continue;
    }
    report.restored++;
  }
  return report;
}
