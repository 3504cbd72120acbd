/**
 * ipamd's read-only view of the API server: the node object and ENIConfig objects, nothing else
 * (RBAC: get on nodes and on eniconfigs.crd.k8s.amazonaws.com).
 *
 * @kubernetes/client-node's KubeConfig does what is hard to get right (kubeconfig and service-account
 * loading, CA/client certificates, token files that rotate, exec and OIDC credentials, proxies); the
 * two GETs themselves are plain HTTPS requests. Only the KubeConfig module is imported: the package's
 * generated API classes add ~13 MB to the bundle and ~50 MB to a long-lived daemon's RSS for two reads.
 * It is loaded on the first request, so a daemon without a cluster never pays for it.
 */
import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { ClusterSource } from './detect.js';

export const ENICONFIG_GROUP = 'crd.k8s.amazonaws.com';
export const ENICONFIG_VERSION = 'v1alpha1';
export const ENICONFIG_PLURAL = 'eniconfigs';

/** Default bound on one API request, so an unreachable API server cannot stall ipamd's start for long. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** A node or ENIConfig object is a few KB; anything this large is not one. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface K8sAccess {
  /** Where requests go (for logs and errors). */
  readonly server: string;
  /** GET /api/v1/nodes/<name>; null when the API server has no such node. */
  readNode(name: string): Promise<unknown | null>;
  /** GET the cluster-scoped ENIConfig; null when it does not exist. */
  readEniConfig(name: string): Promise<unknown | null>;
}

/** An API request that failed for a reason other than "not found" (unreachable, 401/403, 5xx, timeout). */
export class K8sRequestError extends Error {
  override name = 'K8sRequestError';
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

async function loadKubeConfig(source: ClusterSource): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
  const kc = new KubeConfig();
  if (source.kind === 'kubeconfig') {
    try {
      kc.loadFromFile(source.path);
    } catch (err) {
      throw new K8sRequestError(`kubeconfig ${source.path}: ${(err as Error).message}`, null);
    }
  } else {
    // Built from the detected values: the library's loadFromCluster reads process.env itself.
    kc.loadFromOptions({
      clusters: [{ name: 'in-cluster', server: source.server, caFile: source.caFile, skipTLSVerify: false }],
      users: [
        {
          name: 'service-account',
          authProvider: { name: 'tokenFile', config: { tokenFile: source.tokenFile } },
        },
      ],
      contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'service-account' }],
      currentContext: 'in-cluster',
    });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    const where = source.kind === 'kubeconfig' ? `kubeconfig ${source.path}` : 'the service account';
    throw new K8sRequestError(`${where}: the current context names no cluster with a server`, null);
  }
  return kc;
}

/** The API server's own words: a Status object's message, else the start of the body. */
function reasonOf(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    if (typeof status.message === 'string' && status.message !== '') return status.message;
  } catch {
    // not JSON
  }
  return body.slice(0, 200).trim() || 'no body';
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

export function createK8sAccess(source: ClusterSource, opts: { requestTimeoutMs?: number } = {}): K8sAccess {
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const server = source.kind === 'in-cluster' ? source.server : `kubeconfig ${source.path}`;
  let config: Promise<KubeConfig> | null = null;
  const kubeConfig = (): Promise<KubeConfig> => {
    config ??= loadKubeConfig(source);
    // A failed load is retried on the next call rather than remembered.
    config.catch(() => {
      config = null;
    });
    return config;
  };

  /** GET `path`; the parsed JSON object, or null on 404. */
  const get = async (what: string, path: string): Promise<unknown | null> => {
    const kc = await kubeConfig();
    const base = new URL(kc.getCurrentCluster()?.server ?? '');
    const url = new URL(`${base.pathname.replace(/\/$/, '')}${path}`, base);
    // Credentials (token, token file, exec plugin, client certificate) and TLS settings per request:
    // token files rotate under a long-lived daemon.
    const reqOpts: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
    await kc.applyToHTTPSOptions(reqOpts);
    const fail = (msg: string, status: number | null = null) =>
      new K8sRequestError(`GET ${what} from ${server} ${msg}`, status);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, reqOpts, (res) => {
        readBody(res).then((b) => resolve({ status: res.statusCode ?? 0, body: b }), reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(fail(`got no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(err instanceof K8sRequestError ? err : fail(`failed: ${err.message}`)));
      req.end();
    });
    if (status === 404) return null;
    if (status !== 200) {
      const hint =
        status === 401 || status === 403
          ? ' (check the aws-node service account and its ClusterRole: get on nodes and eniconfigs)'
          : '';
      throw fail(`failed with HTTP ${status}: ${reasonOf(body)}${hint}`, status);
    }
    try {
      return JSON.parse(body) as unknown;
    } catch {
      throw fail('returned a body that is not JSON', status);
    }
  };

  return {
    server,
    readNode: (name) => get(`node '${name}'`, `/api/v1/nodes/${encodeURIComponent(name)}`),
    readEniConfig: (name) =>
      get(
        `ENIConfig '${name}'`,
        `/apis/${ENICONFIG_GROUP}/${ENICONFIG_VERSION}/${ENICONFIG_PLURAL}/${encodeURIComponent(name)}`,
      ),
  };
}
