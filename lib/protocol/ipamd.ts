/**
 * The ipamd <-> CNI plugin protocol: one JSON object per line over a Unix stream socket.
 * The plugin sends one request, reads one response line, closes. Versioned so a plugin and a daemon
 * from different releases fail with a clear message instead of misreading each other.
 * This module has no dependencies so the plugin pays nothing to load it.
 */
import { CONTAINER_ID_RE, ifNameProblem, labelProblem, NETWORK_NAME_RE, netnsPathProblem } from './names.js';

export const PROTOCOL_VERSION = 1;
/** Requests longer than this are rejected without being parsed. */
export const MAX_REQUEST_BYTES = 64 * 1024;
export const DEFAULT_SOCKET_PATH = '/var/run/aws-node/vpc-cni.sock';

/** Identifies one pod attachment; assignment is idempotent on it. */
export interface AttachmentKey {
  /** CNI network name from the config. */
  network: string;
  containerId: string;
  ifName: string;
}

export interface AddRequest extends AttachmentKey {
  v: number;
  op: 'add';
  netns: string;
  podNamespace?: string;
  podName?: string;
}

export interface DelRequest extends AttachmentKey {
  v: number;
  op: 'del';
  /**
   * Addresses the runtime's prevResult names for this attachment. ipamd says which of them another
   * attachment holds, so the plugin never unwires a pod that now owns one of them.
   */
  addresses?: string[];
}

/** Release every address of `network` whose attachment is not in `valid`. */
export interface GcRequest {
  v: number;
  op: 'gc';
  network: string;
  valid: { containerId: string; ifName: string }[];
  /** Needed to release every attachment the network has (an empty or stale list usually is a bug). */
  force?: boolean;
}

export interface HealthRequest {
  v: number;
  op: 'health';
}

/**
 * A whole CNI call forwarded by the native shim (dist/aws-cni): the runtime's CNI_* environment and
 * the netconf from stdin. ipamd runs the plugin's own handlers and answers with a CNI frame (below),
 * not a JSON response line, so the shim needs no JSON parser.
 */
export interface CniRequest {
  v: number;
  op: 'cni';
  /** Only CNI_* variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH). */
  env: Record<string, string>;
  /** The netconf; absent when the runtime gave none (VERSION from a terminal). */
  stdin?: string;
  /**
   * 1 when a NETLINK_ROUTE socket created inside CNI_NETNS rides on the request (SCM_RIGHTS): the
   * only way ipamd acts in the pod's namespace. Absent for commands without a namespace.
   */
  netnsFd?: 1;
  /** Why the shim could not open CNI_NETNS (errno name, e.g. ENOENT), instead of the socket. */
  netnsErrno?: string;
}

export type Request = AddRequest | DelRequest | GcRequest | HealthRequest | CniRequest;

/** What running a forwarded CNI call produced: the plugin's exit code and its stdout. */
export interface CniOutcome {
  exitCode: number;
  stdout: string;
}

export const CNI_ENV_KEY = /^CNI_[A-Z0-9_]{1,64}$/;
export const MAX_CNI_ENV_VARS = 32;
export const MAX_CNI_ENV_VALUE_BYTES = 4096;
/** The frame header before the plugin's stdout bytes: `CNI_FRAME_PREFIX<exit code>}}\n`. */
export const CNI_FRAME_PREFIX = `{"v":${PROTOCOL_VERSION},"ok":true,"result":{"exitCode":`;

export interface SnatConfig {
  /** false when AWS_VPC_K8S_CNI_EXTERNALSNAT is on: off-VPC traffic keeps the pod's address. */
  enabled: boolean;
  randomize: 'none' | 'hashrandom' | 'prng';
  excludeCidrs: string[];
}

export interface AddResult {
  /** The pod's IPv4 address (it is routed as a /32). */
  address: string;
  eniId: string;
  /** 0 for the primary ENI. */
  deviceNumber: number;
  /** Route table for traffic from the address: 254 (main) on the primary ENI, deviceNumber + 1 otherwise. */
  routeTable: number;
  subnetCidr: string;
  vpcCidrs: string[];
  snat: SnatConfig;
  /** MTU for the pod's interface (POD_MTU, else AWS_VPC_ENI_MTU). */
  mtu: number;
  vethPrefix: string;
  /**
   * MAC for the host end of the pod's veth, chosen and recorded by ipamd with the assignment, so a
   * later DEL or GC can tell this attachment's veth from another pod's of the same name.
   */
  hostVethMac: string;
}

export interface DelResult {
  /** The released address, or null when the key was unknown (already released). */
  address: string | null;
  deviceNumber: number | null;
  routeTable: number | null;
  /** The host veth MAC recorded for the released address (null: unknown key or an older record). */
  hostVethMac: string | null;
  /** Of the request's `addresses`, those another attachment holds now: not this DEL's to touch. */
  heldByOthers: string[];
}

export interface GcResult {
  released: { containerId: string; ifName: string; address: string; hostVethMac?: string }[];
}

export interface HealthResult {
  ready: boolean;
  /** Why the daemon is not ready, for the plugin's STATUS error. */
  reason?: string;
  freeAddresses: number;
}

/** Machine-readable error kinds; the plugin maps them to CNI error codes. */
export type ErrorCode =
  | 'bad_request' // malformed, oversized, unknown op or field type
  | 'version_mismatch'
  | 'not_ready' // still starting, reconciling or shutting down: try again later
  | 'pool_empty' // momentarily no free address, the pool is growing: try again later
  | 'exhausted' // no address can be had: max pods, ENI limit, subnet full (message says which)
  | 'forbidden' // the caller's credentials (SO_PEERCRED) do not allow this op
  | 'internal';

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export type Response<T> = { v: number; ok: true; result: T } | { v: number; ok: false; error: ErrorBody };

export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

type Check = (value: string) => string | undefined;

const checks: Record<string, Check> = {
  network: (v) =>
    NETWORK_NAME_RE.test(v) ? undefined : 'must be a CNI network name ([A-Za-z0-9][A-Za-z0-9_.-]*)',
  containerId: (v) =>
    CONTAINER_ID_RE.test(v) ? undefined : 'must be a CNI container id ([A-Za-z0-9][A-Za-z0-9_.-]*)',
  ifName: ifNameProblem,
  netns: netnsPathProblem,
  podNamespace: (v) => labelProblem(v),
  podName: (v) => labelProblem(v),
};

function field(obj: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const value = obj[name];
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > 1024) {
    throw new ProtocolError(
      'bad_request',
      `field "${name}" must be a non-empty string of at most 1024 characters`,
    );
  }
  const problem = checks[name]?.(value);
  if (problem) throw new ProtocolError('bad_request', `field "${name}" ${problem}`);
  return value;
}

const MAX_DEL_ADDRESSES = 16;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function addressList(o: Record<string, unknown>): string[] | undefined {
  if (o.addresses === undefined) return undefined;
  if (
    !Array.isArray(o.addresses) ||
    o.addresses.length > MAX_DEL_ADDRESSES ||
    !o.addresses.every((a) => typeof a === 'string' && IPV4_RE.test(a))
  ) {
    throw new ProtocolError(
      'bad_request',
      `field "addresses" must be a list of at most ${MAX_DEL_ADDRESSES} IPv4 addresses`,
    );
  }
  return o.addresses as string[];
}

/** Parses and validates one request line; throws ProtocolError with a specific message. */
export function parseRequest(line: string): Request {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) {
    throw new ProtocolError('bad_request', `request larger than ${MAX_REQUEST_BYTES} bytes`);
  }
  // A gRPC (HTTP/2) or HTTP client dialled the wrong socket: the AWS VPC CNI's ipamd.sock API is not served here.
  const foreign = /^(PRI \* HTTP\/2\.0|[A-Z]+ \S+ HTTP\/1\.[01])\r?$/.exec(line);
  if (foreign) {
    throw new ProtocolError(
      'bad_request',
      `the client speaks ${foreign[1]!.startsWith('PRI') ? 'gRPC (HTTP/2)' : 'HTTP/1'}, not vpc-cni's NDJSON protocol: it expects the AWS VPC CNI's gRPC API (e.g. the network policy agent), which vpc-cni does not serve (docs/migration.md)`,
    );
  }
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw new ProtocolError('bad_request', `request is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ProtocolError('bad_request', 'request must be a JSON object');
  }
  const o = obj as Record<string, unknown>;
  if (o.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      'version_mismatch',
      `protocol version ${JSON.stringify(o.v)} not supported; this ipamd speaks version ${PROTOCOL_VERSION}`,
    );
  }
  switch (o.op) {
    case 'health':
      return { v: PROTOCOL_VERSION, op: 'health' };
    case 'add':
      return {
        v: PROTOCOL_VERSION,
        op: 'add',
        network: field(o, 'network', true)!,
        containerId: field(o, 'containerId', true)!,
        ifName: field(o, 'ifName', true)!,
        netns: field(o, 'netns', true)!,
        podNamespace: field(o, 'podNamespace', false),
        podName: field(o, 'podName', false),
      };
    case 'del': {
      const addresses = addressList(o);
      return {
        v: PROTOCOL_VERSION,
        op: 'del',
        network: field(o, 'network', true)!,
        containerId: field(o, 'containerId', true)!,
        ifName: field(o, 'ifName', true)!,
        ...(addresses ? { addresses } : {}),
      };
    }
    case 'gc': {
      const network = field(o, 'network', true)!;
      if (!Array.isArray(o.valid)) throw new ProtocolError('bad_request', 'field "valid" must be an array');
      const valid = o.valid.map((item, i) => {
        if (typeof item !== 'object' || item === null) {
          throw new ProtocolError('bad_request', `valid[${i}] must be an object`);
        }
        const it = item as Record<string, unknown>;
        return { containerId: field(it, 'containerId', true)!, ifName: field(it, 'ifName', true)! };
      });
      if (o.force !== undefined && typeof o.force !== 'boolean') {
        throw new ProtocolError('bad_request', 'field "force" must be a boolean when present');
      }
      return { v: PROTOCOL_VERSION, op: 'gc', network, valid, ...(o.force ? { force: true } : {}) };
    }
    case 'cni':
      return parseCniRequest(o);
    default:
      throw new ProtocolError(
        'bad_request',
        `unknown op ${JSON.stringify(o.op)}; expected add, del, gc, health or cni`,
      );
  }
}

function parseCniRequest(o: Record<string, unknown>): CniRequest {
  const env = o.env;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) {
    throw new ProtocolError('bad_request', 'field "env" must be an object of CNI_* variables');
  }
  const entries = Object.entries(env);
  if (entries.length > MAX_CNI_ENV_VARS) {
    throw new ProtocolError('bad_request', `field "env" has more than ${MAX_CNI_ENV_VARS} variables`);
  }
  const out: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (!CNI_ENV_KEY.test(key)) {
      throw new ProtocolError('bad_request', `env key ${JSON.stringify(key)} is not a CNI_* variable`);
    }
    if (typeof value !== 'string' || Buffer.byteLength(value) > MAX_CNI_ENV_VALUE_BYTES) {
      throw new ProtocolError(
        'bad_request',
        `env.${key} must be a string of at most ${MAX_CNI_ENV_VALUE_BYTES} bytes`,
      );
    }
    out[key] = value;
  }
  if (o.stdin !== undefined && typeof o.stdin !== 'string') {
    throw new ProtocolError('bad_request', 'field "stdin" must be a string when present');
  }
  if (o.netnsFd !== undefined && o.netnsFd !== 1) {
    throw new ProtocolError('bad_request', 'field "netnsFd" must be 1 when present');
  }
  if (
    o.netnsErrno !== undefined &&
    (typeof o.netnsErrno !== 'string' || !/^E[A-Z0-9]{1,15}$/.test(o.netnsErrno))
  ) {
    throw new ProtocolError('bad_request', 'field "netnsErrno" must be an errno name such as "ENOENT"');
  }
  return {
    v: PROTOCOL_VERSION,
    op: 'cni',
    env: out,
    ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
    ...(o.netnsFd === 1 ? { netnsFd: 1 as const } : {}),
    ...(o.netnsErrno === undefined ? {} : { netnsErrno: o.netnsErrno as string }),
  };
}

/**
 * The answer to a `cni` request: a fixed header line the shim matches byte for byte, then the
 * plugin's stdout verbatim. Any other answer (an error line) means the call was not run.
 */
export function cniFrame(outcome: CniOutcome): string {
  if (!Number.isInteger(outcome.exitCode) || outcome.exitCode < 0 || outcome.exitCode > 255) {
    throw new Error(`exit code ${outcome.exitCode} is not 0-255`);
  }
  return `${CNI_FRAME_PREFIX}${outcome.exitCode}}}\n${outcome.stdout}`;
}

export function okLine<T>(result: T): string {
  return `${JSON.stringify({ v: PROTOCOL_VERSION, ok: true, result })}\n`;
}

export function errorLine(code: ErrorCode, message: string): string {
  return `${JSON.stringify({ v: PROTOCOL_VERSION, ok: false, error: { code, message } })}\n`;
}
