/**
 * One CNI call from start to answer, with no process globals: the environment, stdin and the way to
 * reach ipamd are parameters, and the answer is returned (stdout text + exit code) instead of
 * printed. The Node plugin (main.ts) calls it with its own process; ipamd calls it for calls the
 * native shim forwards over the socket (ipamd/cni-exec.ts), with ipamd's datastore as `ipamd`.
 */
import type { CniOutcome } from '../lib/protocol/ipamd.js';
import { parseCommand, parseEnv } from './env.js';
import { CniError, Code, errorJson } from './errors.js';
import { type IpamdApi, IpamdClient } from './ipamd-client.js';
import { fileLogger } from './log.js';
import { type NetConf, parseNetConf, SUPPORTED_VERSIONS } from './netconf.js';
import type { NetnsSource } from './podns.js';

const LATEST = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;

export interface CniInvocation {
  env: Record<string, string | undefined>;
  /** The netconf; undefined when the runtime gave none (a terminal, /dev/null for VERSION). */
  stdin?: string | undefined;
  /** Why stdin could not be read, if it could not. */
  stdinError?: CniError | undefined;
  /** How to reach ipamd for this config; default: its Unix socket (`ipamdSocket`). */
  ipamd?: (conf: NetConf) => IpamdApi;
  /** How to reach the pod's namespace; default: open CNI_NETNS by path (the plugin process). */
  netns?: NetnsSource;
  /** Extra fields for the plugin log's `done` line (the Node plugin's start-up timings). */
  timing?: Record<string, number>;
}

const socketClient = (conf: NetConf): IpamdApi => new IpamdClient({ socketPath: conf.ipamdSocket });

/** The cniVersion to answer an error with: the config's if it can be read, else the newest. */
export function versionOf(stdin: string | undefined): string {
  if (stdin === undefined) return LATEST;
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch {
    // Not JSON: the newest version it is.
  }
  return LATEST;
}

const line = (doc: unknown) => `${JSON.stringify(doc)}\n`;
const ms = (x: number) => Math.round(x * 10) / 10;

export async function runCni(inv: CniInvocation): Promise<CniOutcome> {
  try {
    const command = parseCommand(inv.env);
    if (command === 'VERSION') {
      return {
        exitCode: 0,
        stdout: line({ cniVersion: versionOf(inv.stdin), supportedVersions: SUPPORTED_VERSIONS }),
      };
    }
    const env = parseEnv(inv.env);
    if (inv.stdinError) throw inv.stdinError;
    if (inv.stdin === undefined) {
      throw new CniError(Code.ioFailure, 'no network configuration on stdin', 'the runtime must pipe it');
    }
    const conf = parseNetConf(inv.stdin, command);
    const log = fileLogger(conf.pluginLogFile, conf.pluginLogLevel, {
      command,
      containerId: env.containerId,
      ifName: env.ifName,
      pod: env.podName ? `${env.podNamespace}/${env.podName}` : undefined,
    });
    // Loaded only for commands that need them: they bring netlink (VERSION and config errors do not).
    const { handlers } = await import('./plugin.js');
    const netns = inv.netns ?? (await import('./podns.js')).pathNetnsSource;
    const started = performance.now();
    try {
      const ipamd = (inv.ipamd ?? socketClient)(conf);
      const out = await handlers[command](env, conf, { log, ipamd, netns });
      const timing = { ...inv.timing, runMs: ms(performance.now() - started) };
      log.info('done', out === undefined ? { timing } : { timing, result: out });
      return { exitCode: 0, stdout: out === undefined ? '' : line(out) };
    } catch (err) {
      log.error('failed', errorJson(conf.cniVersion, err));
      throw err;
    }
  } catch (err) {
    return { exitCode: 1, stdout: line(errorJson(versionOf(inv.stdin), err)) };
  }
}
