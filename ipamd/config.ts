/**
 * The one configuration module of ipamd: every environment variable, its default (the AWS VPC CNI's)
 * and its validation. `loadConfig` reports every bad value at once so an operator fixes them in one go.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_SOCKET_PATH, type SnatConfig } from '../lib/protocol/ipamd.js';
import { unsupportedSettingsIn } from './reference-settings.js';
import { resolveGroup } from './server/group.js';

export type Env = Record<string, string | undefined>;

/** Subnet and security groups for secondary ENIs under custom networking (the ENIConfig's spec). */
export interface EniConfig {
  subnet: string;
  securityGroups: string[];
}

export interface Config {
  /** 'ip': secondary IPs; 'prefix': /28 prefixes (ENABLE_PREFIX_DELEGATION). */
  mode: 'ip' | 'prefix';
  /** Whole ENIs of free addresses to keep; used only when no IP/prefix target applies. */
  warmEniTarget: number;
  warmIpTarget: number;
  minimumIpTarget: number;
  /** Free /28 prefixes to keep (prefix mode, when no IP target is set). */
  warmPrefixTarget: number;
  maxEni: number | null;
  maxPods: number | null;
  ipCooldownSeconds: number;
  customNetworking: boolean;
  /** The local ENIConfig (file or env); in a cluster it may instead come from the API server. */
  eniConfig: EniConfig | null;
  /** Set when ipamd can reach a Kubernetes API (KUBERNETES_SERVICE_HOST or KUBECONFIG, and MY_NODE_NAME). */
  cluster: { nodeName: string; eniConfigLabel: string; eniConfigAnnotation: string } | null;
  subnetDiscovery: boolean;
  snat: SnatConfig;
  eniMtu: number;
  podMtu: number;
  vethPrefix: string;
  nodePortSupport: boolean;
  setSysctls: boolean;
  clusterName: string | null;
  additionalEniTags: Record<string, string>;
  disableProvisioning: boolean;
  disableLeakedEniCleanup: boolean;
  /** AWS_EC2_ENDPOINT, else the SDK's AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL; null: the regional endpoint. */
  ec2Endpoint: string | null;
  /** AWS_USE_FIPS_ENDPOINT: the regional FIPS endpoint when no endpoint is given. */
  ec2UseFips: boolean;
  imdsEndpoint: string;
  region: string | null;
  introspectionBind: string | null;
  metricsBind: string | null;
  /** IPAMD_BLOCK_POD_IMDS: drop pod traffic to IMDS (169.254.169.254) on this node. */
  blockPodImds: boolean;
  socketPath: string;
  socketMode: number;
  /** Group owning the socket (IPAMD_SOCKET_GROUP, mode 0660), or null for root-only 0600. */
  socketGid: number | null;
  checkpointPath: string;
  cniConfDir: string;
  writeCniConflist: boolean;
  /** Loop periods; the defaults are the reference's, tests shorten them. */
  reconcileIntervalSeconds: number;
  shrinkIntervalSeconds: number;
  poolCheckIntervalSeconds: number;
  leakedEniAgeSeconds: number;
  leakedEniIntervalSeconds: number;
  /** In a cluster: how often the watched node and ENIConfig are listed again (the watch's safety net). */
  k8sResyncIntervalSeconds: number;
  /** Client-side EC2 rate limits (calls per second) so a node never bursts past EC2's token buckets. */
  ec2MutatingRate: number;
  ec2DescribeRate: number;
  ec2MaxAttempts: number;
  logLevel: string;
  // The AWS VPC CNI's settings for parity (docs/configuration.md; the reference's names and defaults).
  /** AWS_VPC_K8S_CNI_CONNMARK: the mark bit for node-port and SNAT return traffic (0x80). */
  connmark: number;
  /** AWS_EXTERNAL_SERVICE_CIDRS: destinations routed by the main table from every pod (rule 1535). */
  externalServiceCidrs: string[];
  /** CLUSTER_ENDPOINT: the API server URL, used instead of the service VIP kube-proxy provides. */
  clusterEndpoint: string | null;
  /** ANNOTATE_POD_IP: annotate each pod with vpc.amazonaws.com/pod-ips once ADD answers. */
  annotatePodIp: boolean;
  /** ENABLE_IMDS_ONLY_MODE: no EC2 API call at all; implies no provisioning and no leaked-ENI cleanup. */
  imdsOnly: boolean;
  /** HTTP_TIMEOUT: seconds one EC2 HTTP request may take (at least 10, the reference's floor). */
  httpTimeoutSeconds: number;
  /** AWS_MANAGE_ENIS_NON_SCHEDULABLE: change ENIs on a cordoned node too (default: hold them). */
  manageEnisNonSchedulable: boolean;
  /** MANAGE_UNTAGGED_ENI: false leaves attached ENIs without this node's instance_id tag alone. */
  manageUntaggedEnis: boolean;
  /** AWS_VPC_K8S_CNI_LOG_FILE: 'stdout', 'stderr' or an absolute path (rotated by size). */
  logFile: string;
  /** AWS_VPC_K8S_PLUGIN_LOG_FILE / _LEVEL: what the conflist ipamd writes tells the plugin. */
  pluginLogFile: string;
  pluginLogLevel: 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** IPAMD_PLUGIN_LOG_DIR: the only directory ipamd opens a forwarded call's pluginLogFile in. */
  pluginLogDir: string;
  /** IPAMD_LEAKED_ENI_SCOPE: 'node' sweeps this instance's ENIs, 'cluster' every ENI tagged CLUSTER_NAME. */
  leakedEniScope: 'node' | 'cluster';
  /** IPAMD_LEAKED_ENI_START_DELAY_MAX_SECONDS: each sweep waits a random 0..this (fleet spread). */
  leakedEniStartDelayMaxSeconds: number;
  /** Reference settings the environment sets that vpc-cni does not implement (one warning at start). */
  unsupportedReferenceSettings: string[];
  /** Values accepted the reference's way but not as written (one info line at start). */
  notes: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid ipamd configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const TRUE = new Set(['true', '1']);
const FALSE = new Set(['false', '0']);
const SUBNET_ID = /^subnet-[0-9a-f]{1,32}$/;
const SG_ID = /^sg-[0-9a-f]{1,32}$/;
const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);
/** Tag keys ipamd itself writes or reads; ADDITIONAL_ENI_TAGS must not override them. */
const RESERVED_TAG_PREFIXES = ['node.k8s.amazonaws.com/', 'cluster.k8s.amazonaws.com/', 'aws:'];

/** Reads values out of one env, collecting every problem instead of stopping at the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(readonly env: Env) {}

  raw(name: string): string | undefined {
    const v = this.env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  }

  isSet(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  bool(name: string, dflt: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    const lower = v.toLowerCase();
    if (TRUE.has(lower)) return true;
    if (FALSE.has(lower)) return false;
    this.problems.push(`${name}=${JSON.stringify(v)} is not a boolean; use true or false`);
    return dflt;
  }

  int(name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.intOrNull(name, min, max);
    return v ?? dflt;
  }

  intOrNull(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | null {
    const v = this.raw(name);
    if (v === undefined) return null;
    if (!/^-?\d+$/.test(v)) {
      this.problems.push(`${name}=${JSON.stringify(v)} is not a whole number`);
      return null;
    }
    const n = Number(v);
    if (n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
      this.problems.push(`${name}=${v} is out of range; it must be ${range}`);
      return null;
    }
    return n;
  }

  positive(name: string, dflt: number): number {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be a positive number`);
      return dflt;
    }
    return n;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], dflt: T): T {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.problems.push(`${name}=${JSON.stringify(v)} must be one of ${allowed.join(', ')}`);
    return dflt;
  }

  url(name: string, dflt: string | null): string | null {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    try {
      const u = new URL(v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme');
      return v.replace(/\/+$/, '');
    } catch {
      this.problems.push(`${name}=${JSON.stringify(v)} is not an http(s) URL`);
      return dflt;
    }
  }

  /** host:port, ":port" (all addresses) or "false"/"off" handled by the caller. */
  bind(name: string, dflt: string): string {
    const v = this.raw(name) ?? dflt;
    const m = /^(.*):(\d{1,5})$/.exec(v);
    const host = m?.[1] ?? '';
    const port = Number(m?.[2]);
    const hostOk = host === '' || host === 'localhost' || isIP(host.replace(/^\[|\]$/g, '')) !== 0;
    if (!m || !hostOk || port > 65535) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be host:port (for example 127.0.0.1:61679)`);
      return dflt;
    }
    return v;
  }

  absPath(name: string, dflt: string): string {
    const v = this.raw(name) ?? dflt;
    if (!v.startsWith('/')) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be an absolute path`);
      return dflt;
    }
    return v;
  }
}

export function isIpv4Cidr(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m) return false;
  const octetsOk = m.slice(1, 5).every((o) => Number(o) <= 255 && String(Number(o)) === o);
  return octetsOk && Number(m[5]) <= 32;
}

function parseCidrList(r: EnvReader, name: string): string[] {
  const v = r.raw(name);
  if (v === undefined) return [];
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const item of items) {
    if (!isIpv4Cidr(item))
      r.problems.push(`${name}: ${JSON.stringify(item)} is not an IPv4 CIDR (a.b.c.d/n)`);
  }
  return items.filter(isIpv4Cidr);
}

function parseTags(r: EnvReader, name: string): Record<string, string> {
  const v = r.raw(name);
  if (v === undefined) return {};
  let obj: unknown;
  try {
    obj = JSON.parse(v);
  } catch {
    r.problems.push(`${name} must be a JSON object of tag key to value, e.g. {"team":"net"}`);
    return {};
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    r.problems.push(`${name} must be a JSON object of tag key to value, e.g. {"team":"net"}`);
    return {};
  }
  const tags: Record<string, string> = {};
  for (const [k, val] of Object.entries(obj)) {
    if (typeof val !== 'string') {
      r.problems.push(`${name}: the value of tag ${JSON.stringify(k)} must be a string`);
    } else if (k.length === 0 || k.length > 128 || val.length > 256) {
      r.problems.push(`${name}: tag ${JSON.stringify(k)} has an empty or too long key (128) or value (256)`);
    } else if (RESERVED_TAG_PREFIXES.some((p) => k.startsWith(p))) {
      r.problems.push(`${name}: tag key ${JSON.stringify(k)} uses a prefix reserved for ipamd or AWS`);
    } else {
      tags[k] = val;
    }
  }
  return tags;
}

function validateEniConfig(r: EnvReader, source: string, subnet: unknown, groups: unknown): EniConfig | null {
  const before = r.problems.length;
  if (typeof subnet !== 'string' || !SUBNET_ID.test(subnet)) {
    r.problems.push(`${source}: subnet ${JSON.stringify(subnet)} is not a subnet id (subnet-...)`);
  }
  if (!Array.isArray(groups) || groups.length === 0 || groups.length > 16) {
    r.problems.push(`${source}: securityGroups must list 1 to 16 security group ids (sg-...)`);
  } else {
    for (const g of groups) {
      if (typeof g !== 'string' || !SG_ID.test(g)) {
        r.problems.push(`${source}: ${JSON.stringify(g)} is not a security group id (sg-...)`);
      }
    }
  }
  if (r.problems.length > before) return null;
  return { subnet: subnet as string, securityGroups: groups as string[] };
}

/** The ENIConfig from ENI_CONFIG_FILE (an ENIConfig object in YAML/JSON) or ENI_CONFIG_SUBNET + ENI_CONFIG_SECURITY_GROUPS. */
function parseEniConfig(r: EnvReader): EniConfig | null {
  const file = r.raw('ENI_CONFIG_FILE');
  if (file !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      r.problems.push(`ENI_CONFIG_FILE=${file}: cannot read or parse it: ${(err as Error).message}`);
      return null;
    }
    const spec = (doc as { spec?: Record<string, unknown> } | null)?.spec ?? (doc as Record<string, unknown>);
    if (typeof spec !== 'object' || spec === null) {
      r.problems.push(
        `ENI_CONFIG_FILE=${file}: expected an ENIConfig with spec.subnet and spec.securityGroups`,
      );
      return null;
    }
    return validateEniConfig(r, `ENI_CONFIG_FILE=${file}`, spec.subnet, spec.securityGroups);
  }
  const subnet = r.raw('ENI_CONFIG_SUBNET');
  const groups = r.raw('ENI_CONFIG_SECURITY_GROUPS');
  if (subnet === undefined && groups === undefined) return null;
  const list = (groups ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return validateEniConfig(r, 'ENI_CONFIG_SUBNET/ENI_CONFIG_SECURITY_GROUPS', subnet, list);
}

function parseVethPrefix(r: EnvReader): string {
  const v = r.raw('AWS_VPC_K8S_CNI_VETHPREFIX') ?? 'eni';
  // Host veth names are prefix + 11 hash characters and must fit IFNAMSIZ (15).
  if (!/^[a-zA-Z0-9_-]{1,4}$/.test(v) || ['eth', 'vlan', 'lo'].includes(v)) {
    r.problems.push(
      `AWS_VPC_K8S_CNI_VETHPREFIX=${JSON.stringify(v)} must be 1-4 letters/digits and not eth, vlan or lo`,
    );
    return 'eni';
  }
  return v;
}

/** host:port, or the reference's `unix:<absolute path>` for a Unix socket. */
function parseIntrospectionBind(r: EnvReader): string {
  const v = r.raw('INTROSPECTION_BIND_ADDRESS');
  if (v?.startsWith('unix:')) {
    const path = v.slice('unix:'.length);
    if (!path.startsWith('/') || path.endsWith('/')) {
      r.problems.push(`INTROSPECTION_BIND_ADDRESS=${JSON.stringify(v)}: unix: needs an absolute socket path`);
      return '127.0.0.1:61679';
    }
    return v;
  }
  return r.bind('INTROSPECTION_BIND_ADDRESS', '127.0.0.1:61679');
}

/** The reference spells it AWS_VPC_CNI_NODE_PORT_SUPPORT; ours (AWS_VPC_K8S_CNI_...) stays an alias. */
function parseNodePortSupport(r: EnvReader): boolean {
  const theirs = r.isSet('AWS_VPC_CNI_NODE_PORT_SUPPORT');
  const ours = r.isSet('AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT');
  const reference = r.bool('AWS_VPC_CNI_NODE_PORT_SUPPORT', true);
  const alias = r.bool('AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT', true);
  if (theirs && ours && reference !== alias) {
    r.problems.push(
      'AWS_VPC_CNI_NODE_PORT_SUPPORT and its alias AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT disagree; set only AWS_VPC_CNI_NODE_PORT_SUPPORT',
    );
  }
  return theirs ? reference : alias;
}

/** A mark as the reference reads it: decimal, 0x hex or 0 octal; non-zero and 32 bits. */
function parseConnmark(r: EnvReader): number {
  const v = r.raw('AWS_VPC_K8S_CNI_CONNMARK');
  if (v === undefined) return 0x80;
  const n = /^(0x[0-9a-f]+|0[0-7]*|[1-9]\d*)$/i.test(v)
    ? Number(/^0[0-7]+$/.test(v) ? Number.parseInt(v, 8) : v)
    : Number.NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
    r.problems.push(
      `AWS_VPC_K8S_CNI_CONNMARK=${JSON.stringify(v)} must be a non-zero 32-bit mark, e.g. 0x80 or 128`,
    );
    return 0x80;
  }
  return n;
}

/** Where a log goes: 'stdout'/'stderr' (any case) or an absolute file path. */
function parseLogDestination(r: EnvReader, name: string, dflt: string, allowed: string[]): string {
  const v = r.env[name];
  // The reference treats an explicitly empty value as stderr.
  if (v !== undefined && v.trim() === '') return 'stderr';
  const raw = r.raw(name) ?? dflt;
  if (allowed.includes(raw.toLowerCase())) return raw.toLowerCase();
  if (!raw.startsWith('/') || raw.endsWith('/')) {
    r.problems.push(`${name}=${JSON.stringify(raw)} must be ${allowed.join(', ')} or an absolute file path`);
    return dflt;
  }
  return raw;
}

const PLUGIN_LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'] as const;

type ParitySettings = Pick<
  Config,
  | 'connmark'
  | 'externalServiceCidrs'
  | 'clusterEndpoint'
  | 'annotatePodIp'
  | 'imdsOnly'
  | 'httpTimeoutSeconds'
  | 'manageEnisNonSchedulable'
  | 'manageUntaggedEnis'
  | 'logFile'
  | 'pluginLogFile'
  | 'pluginLogLevel'
  | 'pluginLogDir'
  | 'leakedEniScope'
  | 'leakedEniStartDelayMaxSeconds'
  | 'unsupportedReferenceSettings'
  | 'notes'
>;

function parseParitySettings(r: EnvReader, env: Env): ParitySettings {
  const notes: string[] = [];
  // The reference takes HTTP_TIMEOUT only from 10 s up and uses 10 s otherwise; so does ipamd, saying so.
  let httpTimeoutSeconds = r.int('HTTP_TIMEOUT', 10, 1, 3600);
  if (httpTimeoutSeconds < 10) {
    notes.push(`HTTP_TIMEOUT=${httpTimeoutSeconds} is below the reference's 10 s floor; using 10`);
    httpTimeoutSeconds = 10;
  }
  const endpoint = r.raw('CLUSTER_ENDPOINT');
  let clusterEndpoint: string | null = null;
  if (endpoint !== undefined) {
    try {
      const u = new URL(endpoint);
      if (u.protocol !== 'https:' || u.username || u.password || (u.pathname !== '/' && u.pathname !== '')) {
        throw new Error('shape');
      }
      clusterEndpoint = `https://${u.host}`;
    } catch {
      r.problems.push(
        `CLUSTER_ENDPOINT=${JSON.stringify(endpoint)} must be the API server's https URL (https://host[:port]); the service account token never travels in clear text`,
      );
    }
  }
  const pluginLogLevel = (r.raw('AWS_VPC_K8S_PLUGIN_LOG_LEVEL') ?? 'debug').toLowerCase();
  if (!(PLUGIN_LOG_LEVELS as readonly string[]).includes(pluginLogLevel)) {
    r.problems.push(
      `AWS_VPC_K8S_PLUGIN_LOG_LEVEL=${JSON.stringify(pluginLogLevel)} must be one of ${PLUGIN_LOG_LEVELS.join(', ')} (any case)`,
    );
  }
  const pluginLogDir = r.absPath('IPAMD_PLUGIN_LOG_DIR', '/var/log/aws-routed-eni').replace(/\/+$/, '');
  return {
    connmark: parseConnmark(r),
    externalServiceCidrs: parseCidrList(r, 'AWS_EXTERNAL_SERVICE_CIDRS'),
    clusterEndpoint,
    annotatePodIp: r.bool('ANNOTATE_POD_IP', false),
    imdsOnly: r.bool('ENABLE_IMDS_ONLY_MODE', false),
    httpTimeoutSeconds,
    manageEnisNonSchedulable: r.bool('AWS_MANAGE_ENIS_NON_SCHEDULABLE', false),
    manageUntaggedEnis: r.bool('MANAGE_UNTAGGED_ENI', true),
    logFile: parseLogDestination(r, 'AWS_VPC_K8S_CNI_LOG_FILE', '/host/var/log/aws-routed-eni/ipamd.log', [
      'stdout',
      'stderr',
    ]),
    pluginLogFile: parseLogDestination(
      r,
      'AWS_VPC_K8S_PLUGIN_LOG_FILE',
      '/var/log/aws-routed-eni/plugin.log',
      ['stderr'],
    ),
    pluginLogLevel: (PLUGIN_LOG_LEVELS as readonly string[]).includes(pluginLogLevel)
      ? (pluginLogLevel as ParitySettings['pluginLogLevel'])
      : 'debug',
    pluginLogDir: pluginLogDir === '' ? '/' : pluginLogDir,
    leakedEniScope: r.oneOf('IPAMD_LEAKED_ENI_SCOPE', ['node', 'cluster'] as const, 'node'),
    leakedEniStartDelayMaxSeconds: r.int('IPAMD_LEAKED_ENI_START_DELAY_MAX_SECONDS', 300, 0, 3600),
    unsupportedReferenceSettings: unsupportedSettingsIn(env),
    notes,
  };
}

export function loadConfig(env: Env = process.env): Config {
  const r = new EnvReader(env);
  const prefixMode = r.bool('ENABLE_PREFIX_DELEGATION', false);
  const warmIpTarget = r.int('WARM_IP_TARGET', 0, 0);
  const minimumIpTarget = r.int('MINIMUM_IP_TARGET', 0, 0);
  const ipTargets = warmIpTarget > 0 || minimumIpTarget > 0;
  const warmEniTarget = r.int('WARM_ENI_TARGET', 1, 0);
  // Prefix mode keeps one free prefix unless told otherwise; IP targets take precedence (the reference's rule).
  const warmPrefixTarget = r.int('WARM_PREFIX_TARGET', prefixMode && !ipTargets ? 1 : 0, 0);
  if (!prefixMode && !ipTargets && warmEniTarget === 0) {
    r.problems.push(
      'WARM_ENI_TARGET=0 with no WARM_IP_TARGET or MINIMUM_IP_TARGET would keep the pool empty',
    );
  }
  if (prefixMode && !ipTargets && warmPrefixTarget === 0) {
    r.problems.push(
      'ENABLE_PREFIX_DELEGATION=true needs WARM_PREFIX_TARGET >= 1, or WARM_IP_TARGET/MINIMUM_IP_TARGET',
    );
  }

  const customNetworking = r.bool('AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG', false);
  const eniConfig = parseEniConfig(r);
  const nodeName = r.raw('MY_NODE_NAME');
  const cluster =
    (r.isSet('KUBERNETES_SERVICE_HOST') || r.isSet('KUBECONFIG') || r.isSet('CLUSTER_ENDPOINT')) &&
    nodeName !== undefined
      ? {
          nodeName,
          eniConfigLabel: r.raw('ENI_CONFIG_LABEL_DEF') ?? 'k8s.amazonaws.com/eniConfig',
          eniConfigAnnotation: r.raw('ENI_CONFIG_ANNOTATION_DEF') ?? 'k8s.amazonaws.com/eniConfig',
        }
      : null;
  const noLocalEniConfig = eniConfig === null && !r.problems.some((p) => p.startsWith('ENI_CONFIG_'));
  if (customNetworking && noLocalEniConfig && cluster === null) {
    r.problems.push(
      'AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true needs ENI_CONFIG_FILE, or ENI_CONFIG_SUBNET and ENI_CONFIG_SECURITY_GROUPS, or a cluster (KUBERNETES_SERVICE_HOST or KUBECONFIG, and MY_NODE_NAME) with ENIConfig objects',
    );
  }

  const externalSnat = r.bool('AWS_VPC_K8S_CNI_EXTERNALSNAT', false);
  const snat: SnatConfig = {
    enabled: !externalSnat,
    randomize: r.oneOf('AWS_VPC_K8S_CNI_RANDOMIZESNAT', ['none', 'hashrandom', 'prng'] as const, 'prng'),
    excludeCidrs: parseCidrList(r, 'AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS'),
  };
  const eniMtu = r.int('AWS_VPC_ENI_MTU', 9001, 576, 9001);
  const podMtu = r.int('POD_MTU', eniMtu, 576, 9001);

  const logLevel = (r.raw('AWS_VPC_K8S_CNI_LOGLEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.has(logLevel)) {
    r.problems.push(`AWS_VPC_K8S_CNI_LOGLEVEL=${logLevel} must be one of ${[...LOG_LEVELS].join(', ')}`);
  }
  const socketGroup = r.raw('IPAMD_SOCKET_GROUP');
  let socketGid: number | null = null;
  if (socketGroup !== undefined) {
    try {
      socketGid = resolveGroup(socketGroup);
    } catch (err) {
      r.problems.push(`IPAMD_SOCKET_GROUP=${JSON.stringify(socketGroup)}: ${(err as Error).message}`);
    }
  }
  // A socket group only makes sense with group access: it implies 0660 and contradicts an explicit 0600.
  const socketModeRaw = r.oneOf(
    'IPAMD_SOCKET_MODE',
    ['0600', '0660'] as const,
    socketGroup !== undefined ? '0660' : '0600',
  );
  if (socketGroup !== undefined && socketModeRaw === '0600') {
    r.problems.push(
      'IPAMD_SOCKET_GROUP gives a group access to the socket, which IPAMD_SOCKET_MODE=0600 forbids; use 0660 or unset IPAMD_SOCKET_GROUP',
    );
  }

  const parity = parseParitySettings(r, env);
  const imdsOnly = parity.imdsOnly;

  const config: Config = {
    mode: prefixMode ? 'prefix' : 'ip',
    warmEniTarget,
    warmIpTarget,
    minimumIpTarget,
    warmPrefixTarget,
    maxEni: r.intOrNull('MAX_ENI', 1, 100),
    maxPods: r.intOrNull('MAX_PODS', 1, 10_000),
    ipCooldownSeconds: r.int('IP_COOLDOWN_PERIOD', 30, 0, 3600),
    customNetworking,
    eniConfig: customNetworking ? eniConfig : null,
    cluster,
    subnetDiscovery: r.bool('ENABLE_SUBNET_DISCOVERY', true),
    snat,
    eniMtu,
    podMtu,
    vethPrefix: parseVethPrefix(r),
    nodePortSupport: parseNodePortSupport(r),
    setSysctls: r.bool('IPAMD_SET_SYSCTLS', true),
    clusterName: r.raw('CLUSTER_NAME') ?? null,
    additionalEniTags: parseTags(r, 'ADDITIONAL_ENI_TAGS'),
    disableProvisioning: r.bool('DISABLE_NETWORK_RESOURCE_PROVISIONING', false) || imdsOnly,
    disableLeakedEniCleanup: r.bool('DISABLE_LEAKED_ENI_CLEANUP', false) || imdsOnly,
    ec2Endpoint:
      r.url('AWS_EC2_ENDPOINT', null) ??
      r.url('AWS_ENDPOINT_URL_EC2', null) ??
      r.url('AWS_ENDPOINT_URL', null),
    ec2UseFips: r.bool('AWS_USE_FIPS_ENDPOINT', false),
    imdsEndpoint: r.url('AWS_EC2_METADATA_SERVICE_ENDPOINT', 'http://169.254.169.254')!,
    region: r.raw('AWS_REGION') ?? r.raw('AWS_DEFAULT_REGION') ?? null,
    introspectionBind: r.bool('DISABLE_INTROSPECTION', false) ? null : parseIntrospectionBind(r),
    // Loopback: pods (on any node) cannot read the metrics; scrapers need an address set (docs).
    metricsBind: r.bool('DISABLE_METRICS', false) ? null : r.bind('METRICS_BIND_ADDRESS', '127.0.0.1:61678'),
    blockPodImds: r.bool('IPAMD_BLOCK_POD_IMDS', true),
    socketPath: r.absPath('IPAMD_SOCKET_PATH', DEFAULT_SOCKET_PATH),
    socketMode: Number.parseInt(socketModeRaw, 8),
    socketGid,
    checkpointPath: r.absPath('IPAMD_CHECKPOINT_PATH', '/var/run/aws-node/ipam.json'),
    cniConfDir: r.absPath('CNI_CONF_DIR', '/etc/cni/net.d'),
    writeCniConflist: r.bool('WRITE_CNI_CONFLIST', true),
    reconcileIntervalSeconds: r.positive('IPAMD_RECONCILE_INTERVAL_SECONDS', 60),
    shrinkIntervalSeconds: r.positive('IPAMD_SHRINK_INTERVAL_SECONDS', 30),
    poolCheckIntervalSeconds: r.positive('IPAMD_POOL_CHECK_INTERVAL_SECONDS', 5),
    leakedEniAgeSeconds: r.positive('IPAMD_LEAKED_ENI_AGE_SECONDS', 300),
    leakedEniIntervalSeconds: r.positive('IPAMD_LEAKED_ENI_INTERVAL_SECONDS', 3600),
    k8sResyncIntervalSeconds: r.positive('IPAMD_K8S_RESYNC_INTERVAL_SECONDS', 300),
    ec2MutatingRate: r.positive('IPAMD_EC2_MUTATING_RATE', 5),
    ec2DescribeRate: r.positive('IPAMD_EC2_DESCRIBE_RATE', 20),
    ec2MaxAttempts: r.int('IPAMD_EC2_MAX_ATTEMPTS', 8, 1, 20),
    logLevel,
    ...parity,
  };
  if (config.pluginLogFile !== 'stderr' && dirname(config.pluginLogFile) !== config.pluginLogDir) {
    r.problems.push(
      `AWS_VPC_K8S_PLUGIN_LOG_FILE=${config.pluginLogFile} must lie in ${config.pluginLogDir} (IPAMD_PLUGIN_LOG_DIR), the only directory ipamd writes plugin logs in`,
    );
  }
  if (config.leakedEniScope === 'cluster' && config.clusterName === null) {
    r.problems.push(
      "IPAMD_LEAKED_ENI_SCOPE=cluster needs CLUSTER_NAME (the tag that says which ENIs are the cluster's)",
    );
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Whether the pool is sized by WARM_IP_TARGET/MINIMUM_IP_TARGET rather than whole ENIs or prefixes. */
export function usesIpTargets(c: Pick<Config, 'warmIpTarget' | 'minimumIpTarget'>): boolean {
  return c.warmIpTarget > 0 || c.minimumIpTarget > 0;
}
