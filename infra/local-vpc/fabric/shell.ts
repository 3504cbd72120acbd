/**
 * Running iproute2/nft/sysctl for the fabric. This is test infrastructure, so shelling out is fine;
 * batches (`ip -batch -`) keep a namespace's set-up to one process.
 */
import { execFile } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command to completion, never throwing on a non-zero exit (the caller decides). */
export function runCommand(cmd: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
        // spawn failure (ENOENT...) rather than a non-zero exit
        reject(new Error(`cannot run ${cmd}: ${err.message}`));
        return;
      }
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ stdout, stderr, code });
    });
    // A command that exits before reading its input must not turn into an EPIPE crash.
    child.stdin?.on('error', () => {});
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs a command and throws with the command line and its stderr when it fails. */
export async function mustRun(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await runCommand(cmd, args, input);
  if (r.code !== 0) {
    const detail = r.stderr.trim() || r.stdout.trim() || `exit code ${r.code}`;
    throw new Error(`${cmd} ${args.join(' ')} failed: ${detail}`);
  }
  return r.stdout;
}

/**
 * Runs `ip` commands (one per line, without the leading "ip") in namespace `ns` as one batch.
 * Without -force ip stops at the first failing line, and reports its number.
 */
export async function ipBatch(
  ns: string,
  lines: readonly string[],
  opts: { force?: boolean } = {},
): Promise<void> {
  if (lines.length === 0) return;
  try {
    // -force runs every line even after a failure (and still fails at the end).
    const args = ['-n', ns, ...(opts.force ? ['-force'] : []), '-batch', '-'];
    await mustRun('ip', args, `${lines.join('\n')}\n`);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n  batch was:\n    ${lines.join('\n    ')}`);
  }
}
