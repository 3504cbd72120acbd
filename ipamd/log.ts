/** Structured JSON logs (pino) to stderr; every module takes a child logger with its component name. */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string = process.env.AWS_VPC_K8S_CNI_LOGLEVEL ?? 'info'): Logger {
  return pino({ level: level.toLowerCase(), base: { svc: 'ipamd' } }, pino.destination(2));
}

/** A child logger tagged with `component`; the logger itself when it already carries that tag. */
export function withComponent(log: Logger, component: string): Logger {
  return log.bindings().component === component ? log : log.child({ component });
}
