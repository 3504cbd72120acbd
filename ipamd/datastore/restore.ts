/**
 * Replays the checkpoint into a freshly built datastore after a restart. An entry is dropped (and
 * logged) when its address no longer belongs to any ENI, when another entry already holds the address,
 * or when its pod's network namespace is visibly gone (its host routing is then the caller's to
 * remove: `unwire`).
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CheckpointData } from '../checkpoint.js';
import type { Logger } from '../log.js';
import type { Datastore } from './datastore.js';

export interface RestoreReport {
  restored: number;
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
  const report: RestoreReport = { restored: 0, dropped: [], unwire: [] };
  for (const a of data.allocations) {
    const drop = (reason: string) => {
      report.dropped.push({ address: a.address, containerId: a.containerId, reason });
      log.warn(
        { address: a.address, network: a.network, containerId: a.containerId, ifName: a.ifName, reason },
        'checkpoint entry dropped',
      );
    };
    if (!ds.hasAddress(a.address)) {
      drop('the address no longer belongs to any ENI of this node');
      continue;
    }
    if (a.netns && isGone(a.netns)) {
      drop(`the pod's network namespace ${a.netns} is gone`);
      report.unwire.push({ address: a.address, ...(a.hostVethMac ? { hostVethMac: a.hostVethMac } : {}) });
      continue;
    }
    const { address, eniId: _eniId, ...assignment } = a;
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
  for (const c of data.cooldowns) ds.setCooldown(c.address, c.until);
  return report;
}
