/**
 * The network configuration the runtime pipes on stdin: decoded (code 6), version-checked (code 1)
 * and validated (code 7). runtimeConfig and attachment keys are matched case-insensitively because
 * runtimes disagree on spelling (containerd sends HostPort/ContainerPort).
 */

import { DEFAULT_SOCKET_PATH } from '../lib/protocol/ipamd.js';
import { NETWORK_NAME_RE } from '../lib/protocol/names.js';
import type { Command } from './env.js';
import { CniError, Code } from './errors.js';
import { parsePrevResult, type Result } from './result.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
/** STATUS and GC exist from this version on. */
const V110_COMMANDS: readonly Command[] = ['STATUS', 'GC'];

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'fatal'];

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

export interface Attachment {
  containerId: string;
  ifName: string;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  ipamdSocket: string;
  pluginLogFile?: string;
  pluginLogLevel: LogLevel;
  /** runtimeConfig with every key lower-cased. */
  runtimeConfig: Record<string, unknown>;
  portMappings: PortMapping[];
  prevResult?: Result;
  /** GC only: the attachments the runtime still knows; undefined when the runtime sent none. */
  validAttachments?: Attachment[];
}

/**
 * The largest network configuration accepted, in bytes (cni/README.md): room for a prevResult with
 * thousands of interfaces. The Node plugin stops reading stdin past it; the C shim applies the same.
 */
export const MAX_NETCONF_BYTES = 1024 * 1024;
/** The deepest nesting of objects and arrays accepted; real configurations nest a handful of levels. */
export const MAX_NETCONF_DEPTH = 64;

export function netconfTooLarge(): CniError {
  return invalid(
    'network configuration is too large',
    `stdin holds more than ${MAX_NETCONF_BYTES} bytes, the most this plugin reads`,
  );
}

/** Whether objects/arrays nest deeper than `limit` below `root` (iterative: no stack to exhaust). */
function nestsDeeperThan(root: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

function invalid(msg: string, details: string): CniError {
  return new CniError(Code.invalidConfig, msg, details);
}

/** Deep copy with object keys lower-cased, so lookups ignore the runtime's spelling. */
export function lowerKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(lowerKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k.toLowerCase()] = lowerKeys(v);
  return out;
}

function optionalString(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(`"${key}" must be a string`, `got ${JSON.stringify(v)}`);
  return v;
}

function requiredString(obj: Record<string, unknown>, key: string): string {
  const v = optionalString(obj, key);
  if (v === undefined || v === '')
    throw invalid(`"${key}" is missing`, `the network configuration must set "${key}"`);
  return v;
}

function parseVersion(obj: Record<string, unknown>, command: Command): CniVersion {
  const v = obj.cniVersion;
  if (v === undefined)
    throw invalid('"cniVersion" is missing', `set it to one of ${SUPPORTED_VERSIONS.join(', ')}`);
  if (typeof v !== 'string') throw invalid('"cniVersion" must be a string', `got ${JSON.stringify(v)}`);
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(
      Code.incompatibleVersion,
      'incompatible CNI version',
      `cniVersion "${v}" is not supported; this plugin supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (V110_COMMANDS.includes(command) && v !== '1.1.0') {
    throw new CniError(
      Code.incompatibleVersion,
      'incompatible CNI version',
      `${command} needs cniVersion 1.1.0 or later; the configuration says ${v}`,
    );
  }
  return v as CniVersion;
}

function parsePort(m: Record<string, unknown>, key: string, i: number): number {
  const v = m[key.toLowerCase()];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw invalid(`runtimeConfig.portMappings[${i}].${key} is invalid`, 'it must be a port number 1-65535');
  }
  return v;
}

function parsePortMappings(value: unknown): PortMapping[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw invalid('runtimeConfig.portMappings must be an array', `got ${JSON.stringify(value)}`);
  return value.map((item, i) => {
    if (item === null || typeof item !== 'object')
      throw invalid(`runtimeConfig.portMappings[${i}] must be an object`, '');
    const m = item as Record<string, unknown>;
    const protocol = (typeof m.protocol === 'string' ? m.protocol : 'tcp').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'sctp') {
      throw invalid(
        `runtimeConfig.portMappings[${i}].protocol "${protocol}" is invalid`,
        'use tcp, udp or sctp',
      );
    }
    const mapping: PortMapping = {
      hostPort: parsePort(m, 'hostPort', i),
      containerPort: parsePort(m, 'containerPort', i),
      protocol,
    };
    if (typeof m.hostip === 'string' && m.hostip !== '') mapping.hostIP = m.hostip;
    return mapping;
  });
}

/** Reads `cni.dev/valid-attachments` (1.1.0) or the older `cni.dev/attachments`, keys in any case. */
export function parseAttachments(obj: Record<string, unknown>): Attachment[] | undefined {
  const key = ['cni.dev/valid-attachments', 'cni.dev/attachments'].find((k) => obj[k] !== undefined);
  if (key === undefined) return undefined;
  const value = obj[key];
  if (!Array.isArray(value)) throw invalid(`"${key}" must be an array`, `got ${JSON.stringify(value)}`);
  return value.map((item, i) => {
    const a = lowerKeys(item);
    if (a === null || typeof a !== 'object' || Array.isArray(a))
      throw invalid(`"${key}"[${i}] must be an object`, '');
    const { containerid, ifname } = a as Record<string, unknown>;
    if (
      typeof containerid !== 'string' ||
      containerid === '' ||
      typeof ifname !== 'string' ||
      ifname === ''
    ) {
      throw invalid(
        `"${key}"[${i}] is invalid`,
        'each attachment needs non-empty "containerID" and "ifname"',
      );
    }
    return { containerId: containerid, ifName: ifname };
  });
}

export function parseNetConf(stdin: string, command: Command): NetConf {
  if (stdin.length > MAX_NETCONF_BYTES || Buffer.byteLength(stdin, 'utf8') > MAX_NETCONF_BYTES) {
    throw netconfTooLarge();
  }
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      Code.decodeFailure,
      'network configuration is not valid JSON',
      `${(err as Error).message}; the runtime must pipe the network configuration on stdin`,
    );
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CniError(
      Code.decodeFailure,
      'network configuration must be a JSON object',
      `got ${stdin.slice(0, 80)}`,
    );
  }
  const obj = raw as Record<string, unknown>;
  // Everything below recurses over the document (lower-casing keys, prevResult, error messages).
  for (const [key, value] of Object.entries(obj)) {
    if (nestsDeeperThan(value, MAX_NETCONF_DEPTH)) {
      throw invalid(
        `"${key}" is nested too deeply`,
        `objects and arrays may nest at most ${MAX_NETCONF_DEPTH} levels in the network configuration`,
      );
    }
  }
  const cniVersion = parseVersion(obj, command);
  const name = requiredString(obj, 'name');
  if (!NETWORK_NAME_RE.test(name)) {
    throw invalid(
      `network name "${name}" is invalid`,
      'use letters, digits, "_", "." and "-", starting with a letter or digit',
    );
  }
  const type = requiredString(obj, 'type');
  const ipamdSocket = optionalString(obj, 'ipamdSocket') ?? DEFAULT_SOCKET_PATH;
  if (!ipamdSocket.startsWith('/'))
    throw invalid(`"ipamdSocket" "${ipamdSocket}" must be an absolute path`, '');
  // As AWS_VPC_K8S_PLUGIN_LOG_FILE: a file, or "stderr" (which "" also means); absent: no log.
  const logFileRaw = optionalString(obj, 'pluginLogFile');
  const pluginLogFile =
    logFileRaw === undefined ? undefined : logFileRaw.trim() === '' ? 'stderr' : logFileRaw.trim();
  const logToStderr = pluginLogFile?.toLowerCase() === 'stderr';
  if (pluginLogFile !== undefined && !logToStderr && !pluginLogFile.startsWith('/')) {
    throw invalid(`"pluginLogFile" "${pluginLogFile}" must be an absolute path or "stderr"`, '');
  }
  const level = (optionalString(obj, 'pluginLogLevel') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw invalid(`"pluginLogLevel" "${level}" is invalid`, `use one of ${LOG_LEVELS.join(', ')}`);
  }
  const rc = lowerKeys(obj.runtimeConfig ?? {});
  if (rc === null || typeof rc !== 'object' || Array.isArray(rc)) {
    throw invalid('"runtimeConfig" must be an object', `got ${JSON.stringify(obj.runtimeConfig)}`);
  }
  const runtimeConfig = rc as Record<string, unknown>;
  let prevResult: Result | undefined;
  if (obj.prevResult !== undefined && obj.prevResult !== null) {
    try {
      prevResult = parsePrevResult(obj.prevResult);
    } catch (err) {
      throw invalid('"prevResult" is invalid', (err as Error).message);
    }
  }
  return {
    cniVersion,
    name,
    type,
    ipamdSocket,
    pluginLogFile: logToStderr ? 'stderr' : pluginLogFile,
    pluginLogLevel: level as LogLevel,
    runtimeConfig,
    portMappings: parsePortMappings(runtimeConfig.portmappings),
    prevResult,
    validAttachments: command === 'GC' ? parseAttachments(obj) : undefined,
  };
}
