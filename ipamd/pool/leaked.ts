/**
 * Leaked-ENI cleanup: ENIs ipamd created (tagged with an instance id) that are `available` (not
 * attached) for longer than the grace period are deleted. A node sweeps only what it may own: by
 * default this instance's ENIs; with IPAMD_LEAKED_ENI_SCOPE=cluster (and CLUSTER_NAME), every ENI of
 * the cluster in its VPC, so ENIs of terminated nodes go too.
 *
 * As in the reference, sweeps run hourly and each waits a random start delay first (0-300 s), so a
 * fleet that booted together does not sweep in lock-step; the delay is drawn anew for every sweep.
 */
import type { Ec2Api } from '../aws/ec2.js';
import type { Logger } from '../log.js';
import { awsUtilsErrors } from '../metrics.js';
import { TAG_CLUSTER, TAG_CREATED_AT, TAG_INSTANCE_ID } from './executor.js';

export interface LeakedEniOptions {
  ec2: Ec2Api;
  instanceId: string;
  clusterName: string | null;
  /** 'node' (default): this instance's ENIs only; 'cluster': every ENI tagged with clusterName. */
  scope?: 'node' | 'cluster';
  /** Limits the sweep to this VPC (the reference's filter). */
  vpcId?: string;
  maxAgeMs: number;
  log: Logger;
  now?: () => number;
}

export async function cleanLeakedEnis(o: LeakedEniOptions): Promise<string[]> {
  const now = (o.now ?? Date.now)();
  const clusterWide = (o.scope ?? 'node') === 'cluster' && o.clusterName;
  const scope = clusterWide
    ? { Name: `tag:${TAG_CLUSTER}`, Values: [o.clusterName!] }
    : { Name: `tag:${TAG_INSTANCE_ID}`, Values: [o.instanceId] };
  const enis = await o.ec2.findNetworkInterfaces([
    { Name: 'status', Values: ['available'] },
    { Name: 'tag-key', Values: [TAG_INSTANCE_ID] },
    scope,
    ...(o.vpcId ? [{ Name: 'vpc-id', Values: [o.vpcId] }] : []),
  ]);
  const deleted: string[] = [];
  for (const eni of enis) {
    if (eni.attachment) continue;
    // The filters are EC2's; check the owner ourselves too before deleting anything.
    if (!clusterWide && eni.tags[TAG_INSTANCE_ID] !== o.instanceId) continue;
    if (clusterWide && eni.tags[TAG_CLUSTER] !== o.clusterName) continue;
    const created = Date.parse(eni.tags[TAG_CREATED_AT] ?? '');
    if (Number.isNaN(created)) {
      // No creation time: start the clock now instead of deleting something we cannot date.
      await o.ec2.createTags([eni.id], { [TAG_CREATED_AT]: new Date(now).toISOString() });
      continue;
    }
    if (now - created < o.maxAgeMs) continue;
    try {
      await o.ec2.deleteNetworkInterface(eni.id);
      deleted.push(eni.id);
      o.log.info(
        { eniId: eni.id, owner: eni.tags[TAG_INSTANCE_ID], ageSeconds: Math.round((now - created) / 1000) },
        'deleted leaked ENI',
      );
    } catch (err) {
      awsUtilsErrors.inc({ fn: 'cleanUpLeakedENIDeleteErr', error: (err as Error).message });
      o.log.warn({ eniId: eni.id, err: (err as Error).message }, 'could not delete leaked ENI');
    }
  }
  return deleted;
}

export interface SweepSchedule {
  /** Time between the end of one sweep and the next one's start delay (the reference: an hour). */
  intervalMs: number;
  /** Each sweep first waits a uniformly random 0..this (the reference: 300 s). */
  startDelayMaxMs: number;
  random?: () => number;
  sweep(): Promise<unknown>;
  /** Told the delay before each sweep (for the log). */
  onWait?(delayMs: number): void;
  setTimer?: (fn: () => void, ms: number) => { unref?(): void; ref?(): void } & object;
  clearTimer?: (t: object) => void;
}

/** Runs sweeps forever: random start delay, sweep, interval, random start delay, ...; returns stop(). */
export function scheduleSweeps(s: SweepSchedule): () => void {
  const random = s.random ?? Math.random;
  const setTimer = s.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms));
  const clearTimer = s.clearTimer ?? ((t: object) => clearTimeout(t as NodeJS.Timeout));
  let timer: object | null = null;
  let stopped = false;
  const next = (after: number) => {
    if (stopped) return;
    const delay = Math.floor(random() * s.startDelayMaxMs);
    s.onWait?.(delay);
    const t = setTimer(() => {
      timer = null;
      void s.sweep().finally(() => next(s.intervalMs));
    }, after + delay);
    t.unref?.();
    timer = t;
  };
  next(0);
  return () => {
    stopped = true;
    if (timer) clearTimer(timer);
  };
}
