/**
 * Optional plugin log (pluginLogFile in the netconf, AWS_VPC_K8S_PLUGIN_LOG_FILE in the conflist ipamd
 * writes): one JSON line per event, appended synchronously because the process exits right after
 * answering; `stderr` writes them there instead (stdout belongs to the runtime). Files are opened the
 * way lib/log-file.ts opens every log (never blocking, never following a symlink) and rotated by size.
 *
 * ipamd runs forwarded calls in-process, for callers it does not otherwise trust with files: there
 * `confinePluginLogs(dir)` makes every plugin log outside that one directory a refusal, reported
 * through `onRefused` (ipamd's own log) instead of opened.
 */
import { writeSync } from 'node:fs';
import { dirname, isAbsolute, normalize } from 'node:path';
import { appendLogLine, ensureLogDir } from '../lib/log-file.js';
import type { LogLevel } from './netconf.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface Confinement {
  dir: string;
  onRefused(file: string, why: string): void;
}
let confinement: Confinement | null = null;

/** In this process, plugin logs may only be files directly in `dir` (null lifts it: tests). */
export function confinePluginLogs(dir: string | null, onRefused: Confinement['onRefused'] = () => {}): void {
  confinement = dir === null ? null : { dir: normalize(dir).replace(/\/+$/, '') || '/', onRefused };
}

/** Why `file` may not be opened here, or null when it may. */
function refusal(file: string): string | null {
  if (!confinement) return null;
  if (!isAbsolute(file) || normalize(file) !== file || dirname(file) !== confinement.dir) {
    return `ipamd writes plugin logs only directly in ${confinement.dir}`;
  }
  return null;
}

export function fileLogger(file: string | undefined, level: LogLevel, base: Record<string, unknown>): Logger {
  if (!file) return silentLogger;
  const toStderr = file.toLowerCase() === 'stderr';
  const refused = toStderr ? null : refusal(file);
  if (refused) {
    confinement?.onRefused(file, refused);
    return silentLogger;
  }
  if (!toStderr) {
    try {
      // The plugin's own directory (the reference's log library creates it too); a symlinked one is refused.
      ensureLogDir(dirname(file));
    } catch {
      // Then every line is dropped below: a broken log must not fail pod networking.
    }
  }
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line = `${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields })}\n`;
    try {
      if (toStderr) writeSync(2, line);
      else appendLogLine(file, line);
    } catch {
      // A broken log file (or one refused: FIFO, symlink) must not fail pod networking.
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
