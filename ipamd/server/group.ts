/**
 * Resolves the group that may use the ipamd socket (IPAMD_SOCKET_GROUP): a numeric gid as is, a name
 * through the group database file. Node has no getgrnam(3); /etc/group is what the node's (or the
 * image's) NSS files source reads, and a numeric gid works where the name is unknown to the image.
 */
import { readFileSync } from 'node:fs';

export const GROUP_FILE = '/etc/group';
/** (gid_t)-1 means "unchanged" to chown(2), so the largest usable gid is one below it. */
const MAX_GID = 2 ** 32 - 2;
// POSIX portable names plus what shadow-utils accepts in practice (a trailing $ for machine accounts).
const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

export class GroupError extends Error {
  override name = 'GroupError';
}

/** The gid of `value` (a group name or a numeric gid); throws a GroupError saying what to fix. */
export function resolveGroup(value: string, groupFile = GROUP_FILE): number {
  if (/^\d+$/.test(value)) {
    const gid = Number(value);
    if (gid > MAX_GID) throw new GroupError(`gid ${value} is out of range (0 to ${MAX_GID})`);
    return gid;
  }
  if (!GROUP_NAME.test(value)) {
    throw new GroupError(
      `${JSON.stringify(value)} is neither a numeric gid nor a valid group name (letters, digits, _ . -)`,
    );
  }
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch (err) {
    throw new GroupError(
      `cannot read ${groupFile} to look up group "${value}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a numeric gid instead`,
    );
  }
  for (const line of text.split('\n')) {
    // name:password:gid:members
    const [name, , gid] = line.split(':');
    if (name === value && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new GroupError(
    `no group named "${value}" in ${groupFile}; create it on the node, or give its numeric gid`,
  );
}
