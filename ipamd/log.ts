/**
 * Structured JSON logs (pino); every module takes a child logger with its component name. Where they
 * go is AWS_VPC_K8S_CNI_LOG_FILE's: stdout, stderr, or a file rotated by size (lib/log-file.ts), by
 * default the reference's /host/var/log/aws-routed-eni/ipamd.log so the EKS log collector finds it.
 */
import { pino } from 'pino';
import { RotatingLogFile } from '../lib/log-file.js';

export type Logger = pino.Logger;

/** 'stdout', 'stderr' or an absolute path (config.ts has validated it). */
export type LogDestination = string;

export function createLogger(level = 'info', destination: LogDestination = 'stderr'): Logger {
  const opts = { level: level.toLowerCase(), base: { svc: 'ipamd' } };
  if (destination === 'stderr') return pino(opts, pino.destination(2));
  if (destination === 'stdout') return pino(opts, pino.destination(1));
  return pino(opts, new RotatingLogFile(destination));
}

/** A child logger tagged with `component`; the logger itself when it already carries that tag. */
export function withComponent(log: Logger, component: string): Logger {
  return log.bindings().component === component ? log : log.child({ component });
}
