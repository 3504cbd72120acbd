/**
 * Log files ipamd and the plugin write, opened so that a path someone else chose can never block the
 * daemon or redirect its writes: no FIFO, device or directory (O_NONBLOCK, then regular files only), no
 * planted symlink (O_NOFOLLOW) or hard link to another file (one link only), created with mode 0600
 * as the reference's log library creates them. Rotation is by size: `<file>.1` .. `<file>.<keep>`.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** The reference's (lumberjack) limits: 100 MB a file, 5 old files kept. */
export const LOG_MAX_BYTES = 100 * 1024 * 1024;
export const LOG_KEEP_FILES = 5;
export const LOG_FILE_MODE = 0o600;

// libuv adds O_CLOEXEC to every open itself.
const FLAGS =
  constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOFOLLOW;

export class LogFileError extends Error {
  override name = 'LogFileError';
}

/** Creates the directory (0755) when missing; refuses one that is a symlink or not a directory. */
export function ensureLogDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const st = lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new LogFileError(
      `log directory ${dir} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`,
    );
  }
}

/** Opens `path` for appending; returns the descriptor and the file's size. Never blocks, never follows. */
export function openLogFile(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(path, FLAGS, LOG_FILE_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ELOOP'
        ? 'it is a symlink'
        : code === 'ENXIO'
          ? 'it is a FIFO or socket nobody reads'
          : (err as Error).message;
    throw new LogFileError(`refusing log file ${path}: ${why}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile() || st.nlink > 1) {
    closeSync(fd);
    const what = st.isFile() ? 'a hard link to another file' : 'not a regular file';
    throw new LogFileError(`refusing log file ${path}: it is ${what}`);
  }
  return { fd, size: st.size };
}

/** Shifts `<path>.1..keep-1` up one and moves `path` to `<path>.1` (the oldest is dropped). */
export function rotateLogFile(path: string, keep = LOG_KEEP_FILES): void {
  rmSync(`${path}.${keep}`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    try {
      renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    } catch {
      // That generation does not exist yet.
    }
  }
  try {
    renameSync(path, `${path}.1`);
  } catch {
    // Another writer rotated it first.
  }
}

/** Appends one chunk (a process that writes a few lines and exits: the plugin). Rotates first when full. */
export function appendLogLine(path: string, text: string, maxBytes = LOG_MAX_BYTES): void {
  let { fd, size } = openLogFile(path);
  if (size > 0 && size + Buffer.byteLength(text) > maxBytes) {
    closeSync(fd);
    rotateLogFile(path);
    ({ fd } = openLogFile(path));
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * A long-lived append-only log (ipamd's): one descriptor, synchronous writes (a regular file's writes
 * do not block on a reader), rotated when the next write would pass maxBytes. A pino destination.
 */
export class RotatingLogFile {
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes = LOG_MAX_BYTES,
    private readonly keep = LOG_KEEP_FILES,
  ) {
    ensureLogDir(dirname(path));
    ({ fd: this.fd, size: this.size } = openLogFile(path));
  }

  write(chunk: string): boolean {
    const bytes = Buffer.byteLength(chunk);
    if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    try {
      writeSync(this.fd, chunk);
      this.size += bytes;
    } catch {
      // A full disk must not take ipamd down; the line is lost.
    }
    return true;
  }

  private rotate(): void {
    try {
      rotateLogFile(this.path, this.keep);
      const next = openLogFile(this.path);
      closeSync(this.fd);
      this.fd = next.fd;
      this.size = next.size;
    } catch {
      // Keep writing to the file we have rather than lose the log.
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}
