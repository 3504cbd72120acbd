/**
 * Finishes the DELs the plugin ran while ipamd was away (lib/protocol/pending-del.ts): each note in
 * the pending-del directory removes the host state that provably was the attachment's and releases
 * its address (if it was assigned before the DEL), in that order, and is deleted. Notes are read as
 * untrusted files: regular files only, never through a symlink, never blocking, bounded in size; a
 * note that cannot be read or parsed is logged and removed.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_PENDING_DEL_BYTES, type PendingDel, parsePendingDel } from '../lib/protocol/pending-del.js';
import type { IpamService } from './ipam-handler.js';
import type { Logger } from './log.js';

export interface PendingDelOptions {
  dir: string;
  ipam: Pick<IpamService, 'releasePending'>;
  /** Removes the host rules (and the veth whose MAC matches) of an address about to be released. */
  unwireHost: (owned: { address: string; hostVethMac?: string }) => Promise<void>;
  log: Logger;
}

/** Processes every note once; returns how many addresses were released. */
export async function releasePendingDels(o: PendingDelOptions): Promise<number> {
  let names: string[];
  try {
    names = await readdir(o.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let released = 0;
  for (const name of names) {
    if (!name.endsWith('.json')) continue; // a writer's temp file, or not ours
    const path = join(o.dir, name);
    let note: PendingDel;
    try {
      note = parsePendingDel(await readNote(path));
    } catch (err) {
      o.log.warn({ path, err: (err as Error).message }, 'pending DEL note unreadable; removed');
      await unlink(path).catch(() => {});
      continue;
    }
    // The host state goes before the release (inside releasePending): killed in between, the note
    // is still here and the address still held, so the next pass finishes both.
    if (await o.ipam.releasePending(note, Date.parse(note.at), o.unwireHost)) released++;
    await unlink(path).catch(() => {});
  }
  return released;
}

async function readNote(path: string): Promise<string> {
  const st = await lstat(path);
  if (!st.isFile()) throw new Error('not a regular file');
  if (st.size > MAX_PENDING_DEL_BYTES) throw new Error(`larger than ${MAX_PENDING_DEL_BYTES} bytes`);
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(MAX_PENDING_DEL_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_PENDING_DEL_BYTES) throw new Error(`larger than ${MAX_PENDING_DEL_BYTES} bytes`);
    return buf.toString('utf8', 0, bytesRead);
  } finally {
    await fh.close();
  }
}
