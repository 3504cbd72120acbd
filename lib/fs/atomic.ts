/**
 * Writing a file so that readers see the old content or the new, never half, and nothing planted in
 * the directory can redirect the write: the temp file gets an unpredictable name and is created with
 * O_CREAT|O_EXCL|O_NOFOLLOW (a symlink or file already there makes the open fail instead of being
 * followed or truncated), written, fsync'ed, renamed over the target, and the directory fsync'ed so
 * the rename itself survives a crash.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function writeFileAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fh = await open(tmp, flags, mode);
  try {
    try {
      await fh.writeFile(data);
      // The mode given to open() is filtered by the umask; the documented mode must hold exactly.
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const dh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
