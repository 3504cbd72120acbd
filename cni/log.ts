/**
 * Optional plugin log (pluginLogFile in the netconf): one JSON line per event, appended
 * synchronously because the process exits right after answering. stdout belongs to the runtime.
 */
import { appendFileSync } from 'node:fs';
import type { LogLevel } from './netconf.js';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export function fileLogger(file: string | undefined, level: LogLevel, base: Record<string, unknown>): Logger {
  if (!file) return silentLogger;
  const min = RANK[level];
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < min) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...base, ...fields });
    try {
      appendFileSync(file, `${line}\n`);
    } catch {
      // A broken log file must not fail pod networking.
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
