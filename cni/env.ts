/**
 * The CNI_* environment a runtime sets for every call, validated per command the way the spec's
 * reference library does: what a command needs must be present and well-formed, else code 4.
 */
import { CONTAINER_ID_RE, ifNameProblem } from '../lib/protocol/names.js';
import { CniError, Code } from './errors.js';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface CniEnv {
  command: Command;
  containerId: string;
  /** Empty for DEL when the runtime no longer has the namespace. */
  netns: string;
  ifName: string;
  /** CNI_ARGS as key/value pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args: Record<string, string>;
  path: string[];
  podNamespace?: string;
  podName?: string;
}

type Env = Record<string, string | undefined>;

/** Which variables each command requires (mirrors the spec's skel library). */
const REQUIRED: Record<string, readonly Command[]> = {
  CNI_CONTAINERID: ['ADD', 'DEL', 'CHECK'],
  CNI_NETNS: ['ADD', 'CHECK'],
  CNI_IFNAME: ['ADD', 'DEL', 'CHECK'],
  CNI_PATH: ['ADD', 'DEL', 'CHECK'],
};

/** IFNAMSIZ (16) less the terminating NUL; the kernel counts bytes, so UTF-8 bytes are counted. */

function bad(msg: string, details: string): CniError {
  return new CniError(Code.invalidEnv, msg, details);
}

export function parseCommand(env: Env): Command {
  const raw = env.CNI_COMMAND;
  if (!raw) throw bad('CNI_COMMAND is not set', `set it to one of ${COMMANDS.join(', ')}`);
  if (!COMMANDS.includes(raw as Command)) {
    throw bad(`unknown CNI_COMMAND "${raw}"`, `expected one of ${COMMANDS.join(', ')}`);
  }
  return raw as Command;
}

/** Checks an interface name the way the kernel and the spec do (bytes, not characters). */
export const validateIfName = ifNameProblem;

/** Parses CNI_ARGS ("K=V;K2=V2"); unknown keys are kept and ignored by callers. */
export function parseCniArgs(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw bad('CNI_ARGS is malformed', `"${pair}" is not KEY=VALUE (pairs are separated by ";")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function parseEnv(env: Env): CniEnv {
  const command = parseCommand(env);
  for (const [name, commands] of Object.entries(REQUIRED)) {
    if (commands.includes(command) && !env[name]) {
      throw bad(
        `${name} is not set`,
        `the ${command} command needs ${name}; the container runtime must set it`,
      );
    }
  }
  const containerId = env.CNI_CONTAINERID ?? '';
  if (containerId && !CONTAINER_ID_RE.test(containerId)) {
    throw bad(
      `CNI_CONTAINERID "${containerId}" is invalid`,
      'it must start with a letter or digit and contain only letters, digits, "_", "." and "-"',
    );
  }
  const netns = env.CNI_NETNS ?? '';
  if (netns && !netns.startsWith('/')) {
    throw bad(`CNI_NETNS "${netns}" is invalid`, 'it must be an absolute path such as /var/run/netns/<name>');
  }
  const ifName = env.CNI_IFNAME ?? '';
  if (ifName) {
    const problem = validateIfName(ifName);
    if (problem) throw bad(`CNI_IFNAME "${ifName}" is invalid`, `the interface name ${problem}`);
  }
  const args = parseCniArgs(env.CNI_ARGS);
  return {
    command,
    containerId,
    netns,
    ifName,
    args,
    path: (env.CNI_PATH ?? '').split(':').filter((p) => p !== ''),
    podNamespace: args.K8S_POD_NAMESPACE || undefined,
    podName: args.K8S_POD_NAME || undefined,
  };
}
