/**
 * What ipamd reads from the Kubernetes API when it runs in a cluster: the node's max pods (kubelet's
 * capacity) and, for custom networking, the ENIConfig named by the node's label or annotation.
 * Two GETs with the pod's service-account token over node:https. @kubernetes/client-node would add
 * ~15 MB to the bundle and ~35 MB of RSS to every node (bench/ipamd-rss.ts) for these two reads.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { EniConfig } from './config.js';
import type { Logger } from './log.js';

export interface ClusterSettings {
  maxPods: number | null;
  eniConfigName: string | null;
  eniConfig: EniConfig | null;
}

export interface ClusterOptions {
  nodeName: string;
  /** Label (then annotation) on the node whose value names its ENIConfig (ENI_CONFIG_LABEL_DEF). */
  eniConfigLabel: string;
  eniConfigAnnotation: string;
  /** Only custom networking needs the ENIConfig. */
  wantEniConfig: boolean;
  log: Logger;
  /** For tests; the in-cluster service account otherwise. */
  api?: ApiAccess;
}

export interface ApiAccess {
  /** https://host:port of the API server. */
  server: string;
  token: () => string | null;
  ca?: Buffer;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The API server and credentials a pod sees (the token is re-read: bound tokens rotate). */
export function inClusterAccess(env: NodeJS.ProcessEnv = process.env): ApiAccess {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    token: () => readFileSync(`${SA_DIR}/token`, 'utf8').trim(),
    ca: readFileSync(`${SA_DIR}/ca.crt`),
  };
}

function getJson(api: ApiAccess, path: string): Promise<unknown> {
  const url = new URL(path, api.server);
  const token = api.token();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { headers, timeout: 10_000, ...(api.ca ? { ca: api.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        if (res.statusCode === 200 && body !== undefined) return resolve(body);
        const message = (body as { message?: string } | undefined)?.message ?? text.slice(0, 200);
        reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${message}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

interface NodeObject {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  status?: { capacity?: { pods?: string } };
}

const SUBNET_ID = /^subnet-[0-9a-f]{1,32}$/;
const SG_ID = /^sg-[0-9a-f]{1,32}$/;

export class ClusterConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterConfigError';
  }
}

/** Validates an ENIConfig object's spec, naming the object in every error. */
export function eniConfigFromObject(name: string, obj: unknown): EniConfig {
  const spec = (obj as { spec?: { subnet?: unknown; securityGroups?: unknown } } | null)?.spec;
  const subnet = spec?.subnet;
  const groups = spec?.securityGroups;
  if (typeof subnet !== 'string' || !SUBNET_ID.test(subnet)) {
    throw new ClusterConfigError(
      `ENIConfig ${name}: spec.subnet ${JSON.stringify(subnet)} is not a subnet id`,
    );
  }
  if (
    !Array.isArray(groups) ||
    groups.length === 0 ||
    !groups.every((g) => typeof g === 'string' && SG_ID.test(g))
  ) {
    throw new ClusterConfigError(
      `ENIConfig ${name}: spec.securityGroups must list security group ids (sg-...)`,
    );
  }
  return { subnet, securityGroups: groups as string[] };
}

export async function readClusterSettings(o: ClusterOptions): Promise<ClusterSettings> {
  const api = o.api ?? inClusterAccess();
  const node = (await getJson(api, `/api/v1/nodes/${encodeURIComponent(o.nodeName)}`).catch(
    (err: unknown) => {
      throw new ClusterConfigError(
        `cannot read node ${o.nodeName} from the API server: ${(err as Error).message}`,
      );
    },
  )) as NodeObject;
  const capacity = Number(node.status?.capacity?.pods ?? Number.NaN);
  const maxPods = Number.isInteger(capacity) && capacity > 0 ? capacity : null;
  const eniConfigName =
    node.metadata?.labels?.[o.eniConfigLabel] ?? node.metadata?.annotations?.[o.eniConfigAnnotation] ?? null;
  let eniConfig: EniConfig | null = null;
  if (o.wantEniConfig) {
    if (!eniConfigName) {
      throw new ClusterConfigError(
        `custom networking is on but node ${o.nodeName} has no ${o.eniConfigLabel} label or annotation naming its ENIConfig`,
      );
    }
    const path = `/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/${encodeURIComponent(eniConfigName)}`;
    const obj = await getJson(api, path).catch((err: unknown) => {
      throw new ClusterConfigError(`cannot read ENIConfig ${eniConfigName}: ${(err as Error).message}`);
    });
    eniConfig = eniConfigFromObject(eniConfigName, obj);
  }
  o.log.info({ node: o.nodeName, maxPods, eniConfigName, eniConfig }, 'cluster settings read');
  return { maxPods, eniConfigName, eniConfig };
}
