/**
 * ipamd's run directories (where its socket and checkpoint live) must be as private as what is in
 * them: whoever can write there can swap the socket for their own or plant files where ipamd writes.
 * ipamd creates a missing one (0755, root) and refuses to start when one, or a directory above it,
 * is writable by group or others (above it: unless sticky, like /tmp) or owned by another user.
 */
import { mkdir, realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export class RunDirError extends Error {
  constructor(readonly problems: string[]) {
    super(`refusing to start: ${problems.join('; ')}`);
    this.name = 'RunDirError';
  }
}

const STICKY = 0o1000;
const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

/** Every problem with `dir` (already resolved) and the directories above it, for owner `uid`. */
async function problemsOf(dir: string, uid: number): Promise<string[]> {
  const problems: string[] = [];
  const st = await stat(dir);
  if (!st.isDirectory()) return [`${dir} is not a directory`];
  if (st.uid !== uid) {
    problems.push(
      `run directory ${dir} is owned by uid ${st.uid}, not by uid ${uid} that ipamd runs as; chown ${uid} ${dir}`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    problems.push(
      `run directory ${dir} is writable by group or others (mode ${octal(st.mode)}); chmod go-w ${dir}`,
    );
  }
  for (let d = dirname(dir); ; d = dirname(d)) {
    const up = await stat(d);
    if (up.uid !== 0 && up.uid !== uid) {
      problems.push(`${d} (above run directory ${dir}) is owned by uid ${up.uid}; it must be root's`);
    }
    if ((up.mode & 0o022) !== 0 && (up.mode & STICKY) === 0) {
      problems.push(
        `${d} (above run directory ${dir}) is writable by group or others (mode ${octal(up.mode)}) and not sticky`,
      );
    }
    if (d === dirname(d)) break;
  }
  return problems;
}

/**
 * Makes each directory that is missing, then checks them all; throws RunDirError listing every
 * problem. `uid` is the owner they must have (ipamd's own: root in every deployment).
 */
export async function ensureRunDirs(dirs: readonly string[], uid = process.geteuid?.() ?? 0): Promise<void> {
  const problems: string[] = [];
  for (const dir of new Set(dirs)) {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    problems.push(...(await problemsOf(await realpath(dir), uid)));
  }
  if (problems.length > 0) throw new RunDirError(problems);
}
