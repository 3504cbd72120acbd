/**
 * The one way vpc-cni replaces a file others read (the checkpoint, the CNI conflist, pending-DEL
 * notes): the content goes to a temp file beside the target, created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW) under a random
 * name, with an exact mode; it is fsynced, renamed over the target and the directory fsynced. A file
 * or symlink planted at any name is never followed: rename replaces a link itself, and the temp name
 * cannot be guessed (a collision fails the open instead of writing through it).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Temp name for `path`: hidden, random, and ending in .tmp so CNI runtimes never load it as a config. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(12).toString('hex')}.tmp`);
}

/** Atomically replaces `path` with `data`, mode `mode` exactly (umask does not apply). */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = tempPathFor(path);
  const fh = await open(tmp, CREATE_NEW, mode);
  let renamed = false;
  try {
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => undefined);
  }
  // The rename is durable only once the directory entry is on disk.
  const dh = await open(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
