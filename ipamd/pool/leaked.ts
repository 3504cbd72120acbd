/**
 * Leaked-ENI cleanup: ENIs ipamd created (tagged with an instance id) that are `available` (not
 * attached) for longer than the grace period are deleted. By default only this node's; with
 * CLUSTER_NAME set, every ENI of the cluster, so ENIs of terminated nodes go too.
 */
import type { Ec2Api } from '../aws/ec2.js';
import type { Logger } from '../log.js';
import { TAG_CLUSTER, TAG_CREATED_AT, TAG_INSTANCE_ID } from './executor.js';

export interface LeakedEniOptions {
  ec2: Ec2Api;
  instanceId: string;
  clusterName: string | null;
  maxAgeMs: number;
  log: Logger;
  now?: () => number;
}

export async function cleanLeakedEnis(o: LeakedEniOptions): Promise<string[]> {
  const now = (o.now ?? Date.now)();
  const scope = o.clusterName
    ? { Name: `tag:${TAG_CLUSTER}`, Values: [o.clusterName] }
    : { Name: `tag:${TAG_INSTANCE_ID}`, Values: [o.instanceId] };
  const enis = await o.ec2.findNetworkInterfaces([
    { Name: 'status', Values: ['available'] },
    { Name: 'tag-key', Values: [TAG_INSTANCE_ID] },
    scope,
  ]);
  const deleted: string[] = [];
  for (const eni of enis) {
    if (eni.attachment) continue;
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
      o.log.warn({ eniId: eni.id, err: (err as Error).message }, 'could not delete leaked ENI');
    }
  }
  return deleted;
}
