/**
 * A DEL that could not reach ipamd, left for ipamd to finish: the plugin has unwired what it could
 * prove was the attachment's and answered success (a DEL that fails until ipamd is back would wedge
 * the kubelet's cleanup), so the address itself is released when ipamd next reads this directory.
 * ipamd in its container cannot see the runtime's namespace paths, so without this note it could
 * never tell that such a pod is gone.
 *
 * One JSON file per attachment in `<directory of the ipamd socket>/pending-del/` (the same hostPath
 * as the socket), named by a hash of the key so a repeated DEL replaces its note. ipamd releases the
 * attachment only if it was assigned before the note was written (an ADD retried after the DEL keeps
 * its new address).
 */
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { CONTAINER_ID_RE, ifNameProblem, NETWORK_NAME_RE } from './names.js';

export interface PendingDel {
  network: string;
  containerId: string;
  ifName: string;
  /** Addresses the plugin unwired (informational: ipamd releases by key). */
  addresses: string[];
  /** When the DEL ran (ISO 8601). */
  at: string;
}

export const MAX_PENDING_DEL_BYTES = 4096;

export function pendingDelDir(socketPath: string): string {
  return join(dirname(socketPath), 'pending-del');
}

export function pendingDelFile(
  socketPath: string,
  key: Pick<PendingDel, 'network' | 'containerId' | 'ifName'>,
) {
  const h = createHash('sha256').update(`${key.network}\0${key.containerId}\0${key.ifName}`).digest('hex');
  return join(pendingDelDir(socketPath), `${h.slice(0, 32)}.json`);
}

/** Parses one note; throws an Error saying what is wrong. */
export function parsePendingDel(text: string): PendingDel {
  const o = JSON.parse(text) as Partial<PendingDel> | null;
  if (!o || typeof o !== 'object') throw new Error('not a JSON object');
  if (typeof o.network !== 'string' || !NETWORK_NAME_RE.test(o.network)) throw new Error('bad network');
  if (typeof o.containerId !== 'string' || !CONTAINER_ID_RE.test(o.containerId))
    throw new Error('bad containerId');
  if (typeof o.ifName !== 'string' || ifNameProblem(o.ifName)) throw new Error('bad ifName');
  if (typeof o.at !== 'string' || Number.isNaN(Date.parse(o.at))) throw new Error('bad timestamp');
  const addresses = Array.isArray(o.addresses) ? o.addresses.filter((a) => typeof a === 'string') : [];
  return { network: o.network, containerId: o.containerId, ifName: o.ifName, addresses, at: o.at };
}
