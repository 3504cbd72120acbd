/**
 * aws-cni: the CNI plugin binary. A tiny dispatcher: read the environment and stdin, answer VERSION
 * without loading anything else, and load the command handlers (and with them netlink) only for the
 * commands that need them. One JSON document on stdout, exit 1 on error.
 */
import { fstatSync, readFileSync, writeSync } from 'node:fs';
import { parseCommand, parseEnv } from './env.js';
import { CniError, Code, describe, errorJson } from './errors.js';
import { fileLogger } from './log.js';
import { parseNetConf, SUPPORTED_VERSIONS } from './netconf.js';

const LATEST = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;

function reply(doc: unknown, exitCode: number): never {
  if (doc !== undefined) writeSync(1, `${JSON.stringify(doc)}\n`);
  // Exit at once: open netlink or socket handles must not keep the pod waiting.
  process.exit(exitCode);
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    throw new CniError(Code.ioFailure, 'cannot read the network configuration from stdin', describe(err));
  }
}

/** The cniVersion to answer an error with: the config's if it can be read, else the newest. */
function versionOf(stdin: string | undefined): string {
  if (stdin === undefined) return LATEST;
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch {
    // Not JSON: the newest version it is.
  }
  return LATEST;
}

async function main(): Promise<void> {
  // performance.now() counts from process start: this is Node's own start-up plus the bundle's load.
  const startedMs = performance.now();
  let stdin: string | undefined;
  try {
    const command = parseCommand(process.env);
    if (command === 'VERSION') {
      reply({ cniVersion: versionOf(readStdinIfAny()), supportedVersions: SUPPORTED_VERSIONS }, 0);
    }
    const env = parseEnv(process.env);
    stdin = readStdin();
    const conf = parseNetConf(stdin, command);
    const log = fileLogger(conf.pluginLogFile, conf.pluginLogLevel, {
      command,
      containerId: env.containerId,
      ifName: env.ifName,
      pod: env.podName ? `${env.podNamespace}/${env.podName}` : undefined,
    });
    const { handlers } = await import('./plugin.js');
    const loadedMs = performance.now();
    try {
      const out = await handlers[command](env, conf, log);
      const timing = {
        startupMs: ms(startedMs),
        loadMs: ms(loadedMs - startedMs),
        runMs: ms(performance.now() - loadedMs),
      };
      log.info('done', out === undefined ? { timing } : { timing, result: out });
      reply(out ?? undefined, 0);
    } catch (err) {
      log.error('failed', errorJson(conf.cniVersion, err));
      throw err;
    }
  } catch (err) {
    reply(errorJson(versionOf(stdin), err), 1);
  }
}

const ms = (x: number) => Math.round(x * 10) / 10;

/** VERSION may come with or without a config on stdin; a terminal or /dev/null means none. */
function readStdinIfAny(): string | undefined {
  try {
    if (fstatSync(0).isCharacterDevice()) return undefined;
    return readFileSync(0, 'utf8');
  } catch {
    return undefined;
  }
}

void main();
