/**
 * Which attached ENIs ipamd manages, the reference's rule: never one tagged no_manage=true; always the
 * primary and ENIs tagged with this instance's id; an untagged secondary ENI only with
 * MANAGE_UNTAGGED_ENI=true (the default). A no_manage tag with any other value means managed.
 */
import { TAG_INSTANCE_ID, TAG_NO_MANAGE } from './executor.js';

export interface OwnershipRule {
  instanceId: string;
  manageUntagged: boolean;
}

export function isManaged(
  eni: { tags: Record<string, string>; isPrimary: boolean },
  rule: OwnershipRule,
): boolean {
  const noManage = eni.tags[TAG_NO_MANAGE];
  if (noManage !== undefined) return eni.isPrimary || noManage !== 'true';
  if (eni.isPrimary || eni.tags[TAG_INSTANCE_ID] === rule.instanceId) return true;
  return rule.manageUntagged;
}
