/** Structured JSON logs (pino) to stderr; every module takes a child logger with its component name. */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string = process.env.AWS_VPC_K8S_CNI_LOGLEVEL ?? 'info'): Logger {
  return pino({ level: level.toLowerCase(), base: { svc: 'ipamd' } }, pino.destination(2));
}
