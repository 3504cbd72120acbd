/**
 * Exec probe for Kubernetes readiness/liveness (bundled to dist/ipamd-probe.mjs).
 *
 *   ipamd-probe [--socket PATH] [--timeout MS] [--liveness]
 *
 * Readiness (default): exit 0 only when ipamd answers a health request with ready=true.
 * Liveness: exit 0 when ipamd answers at all (a daemon that is busy reconciling or has an empty pool
 * is alive and must not be restarted for it). Exit 1 otherwise, with the reason on stderr.
 * The socket defaults to IPAMD_SOCKET_PATH, then /var/run/aws-node/vpc-cni.sock.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SOCKET_PATH, type HealthResult, PROTOCOL_VERSION } from '../lib/protocol/ipamd.js';
import { IpamdError, ipamdRequest } from './server/client.js';

export interface ProbeOptions {
  socket: string;
  timeoutMs: number;
  liveness: boolean;
}

export interface ProbeOutcome {
  code: 0 | 1;
  message: string;
}

const USAGE = 'usage: ipamd-probe [--socket PATH] [--timeout MS] [--liveness]';

export function parseProbeArgs(argv: string[], env: NodeJS.ProcessEnv): ProbeOptions {
  const opts: ProbeOptions = {
    socket: env.IPAMD_SOCKET_PATH || DEFAULT_SOCKET_PATH,
    timeoutMs: 3_000,
    liveness: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new Error(`${flag} needs a value; ${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--socket':
        opts.socket = value();
        break;
      case '--timeout': {
        const v = value();
        const ms = Number(v);
        if (!/^\d+$/.test(v) || ms < 1 || ms > 60_000) {
          throw new Error(`--timeout must be a whole number of milliseconds between 1 and 60000, got "${v}"`);
        }
        opts.timeoutMs = ms;
        break;
      }
      case '--liveness':
        opts.liveness = true;
        break;
      default:
        throw new Error(`unknown argument "${arg}"; ${USAGE}`);
    }
  }
  return opts;
}

export async function probe(opts: ProbeOptions): Promise<ProbeOutcome> {
  try {
    const health = await ipamdRequest<HealthResult>(
      opts.socket,
      { v: PROTOCOL_VERSION, op: 'health' },
      opts.timeoutMs,
    );
    if (health.ready) return { code: 0, message: `ipamd ready (${health.freeAddresses} free addresses)` };
    const why = `ipamd not ready: ${health.reason ?? 'no reason given'}`;
    return opts.liveness ? { code: 0, message: `ipamd alive; ${why}` } : { code: 1, message: why };
  } catch (err) {
    // A daemon that answers with an error (e.g. not_ready while shutting down) is still alive.
    if (err instanceof IpamdError && opts.liveness)
      return { code: 0, message: `ipamd alive; ${err.message}` };
    return { code: 1, message: (err as Error).message };
  }
}

async function main(): Promise<void> {
  let outcome: ProbeOutcome;
  try {
    outcome = await probe(parseProbeArgs(process.argv.slice(2), process.env));
  } catch (err) {
    outcome = { code: 1, message: (err as Error).message };
  }
  (outcome.code === 0 ? process.stdout : process.stderr).write(`${outcome.message}\n`);
  process.exitCode = outcome.code;
}

function isEntryPoint(): boolean {
  try {
    return (
      !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))
    );
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
