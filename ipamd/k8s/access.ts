/**
 * ipamd's view of the API server: the node object and ENIConfig objects (RBAC: get on nodes and on
 * eniconfigs.crd.k8s.amazonaws.com) and, with ANNOTATE_POD_IP only, a patch of a pod's annotations.
 *
 * In a pod the service account is a bearer token and a CA, read per request. Outside one (a node whose
 * ipamd runs from systemd with a KUBECONFIG), @kubernetes/client-node's KubeConfig does what is hard to
 * get right (client certificates, exec and OIDC credentials, proxies). The requests themselves are plain
 * HTTPS. Only the KubeConfig module is imported, on the first request, from its own chunk: the
 * package's generated API classes would add ~50 MB to a long-lived daemon's RSS for a few reads.
 */
import { readFile } from 'node:fs/promises';
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

/** The two kinds ipamd reads, as the API paths name them. */
export type K8sKind = 'node' | 'eniconfig';

/** One object by name as a list: the collection's resourceVersion to watch from, and 0 or 1 item. */
export interface ObjectList {
  resourceVersion: string;
  items: unknown[];
}

/** One line of a watch stream, checked only for shape (the objects are validated by their users). */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Record<string, unknown>;
}

export interface WatchOptions {
  /** Asks the API server to end the watch after this long (it then ends cleanly). */
  timeoutSeconds: number;
  /** A stream silent this long is dead (default: timeoutSeconds plus 30 s of grace). */
  idleTimeoutMs?: number;
  /** Ends the watch from our side; the returned promise then resolves. */
  signal?: AbortSignal;
  onEvent(event: WatchEvent): void;
}

export interface K8sAccess {
  /** Where requests go (for logs and errors). */
  readonly server: string;
  /** GET /api/v1/nodes/<name>; null when the API server has no such node. */
  readNode(name: string): Promise<unknown | null>;
  /** GET the cluster-scoped ENIConfig; null when it does not exist. */
  readEniConfig(name: string): Promise<unknown | null>;
  /** GET the collection with fieldSelector=metadata.name=<name>: an absent object is an empty list. */
  listByName(kind: K8sKind, name: string, signal?: AbortSignal): Promise<ObjectList>;
  /**
   * GET the collection with watch=1 from `resourceVersion`, calling onEvent for each line. Resolves
   * when the stream ends (server timeout, abort); rejects with a K8sRequestError when the request
   * fails, the stream breaks, stays silent past its timeout, carries a line that is not a watch event,
   * or carries an ERROR event (status = the Status object's code: 410 when resourceVersion is too old).
   * ERROR events are not passed to onEvent; whatever onEvent throws rejects the promise as it is.
   */
  watchByName(kind: K8sKind, name: string, resourceVersion: string, opts: WatchOptions): Promise<void>;
  /**
   * PATCH (JSON merge patch) the pod's annotations (ANNOTATE_POD_IP; RBAC: patch on pods). False when
   * the pod does not exist (any more); a failure otherwise is a K8sRequestError.
   */
  patchPodAnnotations?(
    namespace: string,
    name: string,
    annotations: Record<string, string>,
  ): Promise<boolean>;
  /** GET the pod; null when it does not exist (ANNOTATE_POD_IP's DEL compares before clearing). */
  readPod?(namespace: string, name: string): Promise<unknown | null>;
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

/** Where requests go and how each one is authenticated. */
interface RequestAuth {
  server(): Promise<URL>;
  apply(opts: RequestOptions): Promise<void>;
}

/**
 * In a pod: the service account's bearer token and CA, read for every request (a bound token rotates
 * under a long-lived daemon; requests are a list and a watch every few minutes). The one auth mode a
 * DaemonSet needs, without loading client-node (~8 MB of the daemon's RSS, bench/ipamd-rss.ts --cluster).
 */
function serviceAccountAuth(source: Extract<ClusterSource, { kind: 'in-cluster' }>): RequestAuth {
  return {
    server: async () => new URL(source.server),
    apply: async (opts) => {
      const read = async (file: string, what: string) => {
        try {
          return await readFile(file, 'utf8');
        } catch (err) {
          throw new K8sRequestError(
            `cannot read the service account ${what} ${file}: ${(err as Error).message}`,
            null,
          );
        }
      };
      const token = (await read(source.tokenFile, 'token')).trim();
      if (token === '')
        throw new K8sRequestError(`the service account token ${source.tokenFile} is empty`, null);
      opts.ca = await read(source.caFile, 'CA');
      opts.headers = { ...opts.headers, authorization: `Bearer ${token}` };
    },
  };
}

/** A kubeconfig (nodes outside a pod): client-node's KubeConfig, for every auth mode kubeconfigs use. */
function kubeConfigAuth(source: Extract<ClusterSource, { kind: 'kubeconfig' }>): RequestAuth {
  let config: Promise<KubeConfig> | null = null;
  const kubeConfig = (): Promise<KubeConfig> => {
    config ??= loadKubeConfig(source);
    // A failed load is retried on the next call rather than remembered.
    config.catch(() => {
      config = null;
    });
    return config;
  };
  return {
    server: async () => new URL((await kubeConfig()).getCurrentCluster()?.server ?? ''),
    apply: async (opts) => {
      await (await kubeConfig()).applyToHTTPSOptions(opts);
    },
  };
}

async function loadKubeConfig(source: Extract<ClusterSource, { kind: 'kubeconfig' }>): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node/dist/config.js');
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(source.path);
  } catch (err) {
    throw new K8sRequestError(`kubeconfig ${source.path}: ${(err as Error).message}`, null);
  }
  if (!kc.getCurrentCluster()?.server) {
    throw new K8sRequestError(
      `kubeconfig ${source.path}: the current context names no cluster with a server`,
      null,
    );
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

const WATCH_EVENT_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);
/** Grace beyond the requested watch timeout before a silent stream counts as dead. */
const WATCH_IDLE_GRACE_MS = 30_000;
/** One watch line is one object: a few KB. */
const MAX_WATCH_LINE_BYTES = 1024 * 1024;

function collectionPath(kind: K8sKind): string {
  return kind === 'node'
    ? '/api/v1/nodes'
    : `/apis/${ENICONFIG_GROUP}/${ENICONFIG_VERSION}/${ENICONFIG_PLURAL}`;
}

function describeKind(kind: K8sKind, name: string): string {
  return kind === 'node' ? `node '${name}'` : `ENIConfig '${name}'`;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one watch line; throws with what was wrong. */
export function parseWatchLine(line: string): WatchEvent {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`watch line is not JSON: ${line.slice(0, 120)}`);
  }
  if (!isRecord(v) || typeof v.type !== 'string' || !WATCH_EVENT_TYPES.has(v.type) || !isRecord(v.object)) {
    throw new Error(`watch line is not a watch event (type + object): ${line.slice(0, 120)}`);
  }
  return { type: v.type as WatchEvent['type'], object: v.object };
}

export function createK8sAccess(source: ClusterSource, opts: { requestTimeoutMs?: number } = {}): K8sAccess {
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const server = source.kind === 'in-cluster' ? source.server : `kubeconfig ${source.path}`;
  const auth = source.kind === 'in-cluster' ? serviceAccountAuth(source) : kubeConfigAuth(source);
  const failure = (what: string, msg: string, status: number | null = null) =>
    new K8sRequestError(`GET ${what} from ${server} ${msg}`, status);
  const httpFailure = (what: string, status: number, body: string) => {
    const hint =
      status === 401 || status === 403
        ? ' (check the aws-node service account and its ClusterRole: get/list/watch on nodes and eniconfigs)'
        : '';
    return failure(what, `failed with HTTP ${status}: ${reasonOf(body)}${hint}`, status);
  };

  /** Sends GET `path` (with query) and resolves with the response once its headers arrive. */
  const send = async (
    what: string,
    path: string,
    socketTimeoutMs: number,
    signal?: AbortSignal,
    write?: { method: 'PATCH'; contentType: string; body: string },
  ): Promise<IncomingMessage> => {
    const base = await auth.server();
    const url = new URL(`${base.pathname.replace(/\/$/, '')}${path}`, base);
    // Credentials (token, token file, exec plugin, client certificate) and TLS settings per request:
    // token files rotate under a long-lived daemon.
    const reqOpts: RequestOptions = {
      method: write?.method ?? 'GET',
      headers: {
        accept: 'application/json',
        ...(write
          ? { 'content-type': write.contentType, 'content-length': Buffer.byteLength(write.body) }
          : {}),
      },
    };
    await auth.apply(reqOpts);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = request(url, { ...reqOpts, signal }, (res) => {
        // The same inactivity bound covers the body (a watch stream that falls silent).
        res.on('error', () => undefined);
        resolve(res);
      });
      req.setTimeout(socketTimeoutMs, () =>
        req.destroy(failure(what, `got no answer within ${socketTimeoutMs} ms`)),
      );
      req.on('error', (err) =>
        reject(err instanceof K8sRequestError ? err : failure(what, `failed: ${err.message}`)),
      );
      req.end(write?.body);
    });
  };

  /** GET `path`; the parsed JSON object, or null on 404. */
  const get = async (what: string, path: string, signal?: AbortSignal): Promise<unknown | null> => {
    const res = await send(what, path, timeoutMs, signal);
    const status = res.statusCode ?? 0;
    const body = await readBody(res).catch((err: Error) => {
      throw err instanceof K8sRequestError ? err : failure(what, `failed: ${err.message}`);
    });
    if (status === 404) return null;
    if (status !== 200) throw httpFailure(what, status, body);
    try {
      return JSON.parse(body) as unknown;
    } catch {
      throw failure(what, 'returned a body that is not JSON', status);
    }
  };

  const listByName = async (kind: K8sKind, name: string, signal?: AbortSignal): Promise<ObjectList> => {
    const what = `${describeKind(kind, name)} (list)`;
    const query = new URLSearchParams({ fieldSelector: `metadata.name=${name}` });
    const list = await get(what, `${collectionPath(kind)}?${query}`, signal);
    if (list === null) {
      throw failure(
        what,
        kind === 'eniconfig'
          ? 'failed: the ENIConfig resource is not served (is the eniconfigs.crd.k8s.amazonaws.com CRD installed?)'
          : 'failed with HTTP 404',
        404,
      );
    }
    const meta = isRecord(list) ? list.metadata : undefined;
    const rv = isRecord(meta) ? meta.resourceVersion : undefined;
    if (!isRecord(list) || !Array.isArray(list.items) || typeof rv !== 'string' || rv === '') {
      throw failure(what, 'returned something that is not a list (items + metadata.resourceVersion)');
    }
    return { resourceVersion: rv, items: list.items };
  };

  const watchByName = async (
    kind: K8sKind,
    name: string,
    resourceVersion: string,
    w: WatchOptions,
  ): Promise<void> => {
    const what = `${describeKind(kind, name)} (watch)`;
    const query = new URLSearchParams({
      watch: '1',
      fieldSelector: `metadata.name=${name}`,
      resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(w.timeoutSeconds),
    });
    if (w.signal?.aborted) return;
    let res: IncomingMessage;
    try {
      res = await send(
        what,
        `${collectionPath(kind)}?${query}`,
        w.idleTimeoutMs ?? w.timeoutSeconds * 1000 + WATCH_IDLE_GRACE_MS,
        w.signal,
      );
    } catch (err) {
      if (w.signal?.aborted) return;
      throw err;
    }
    const status = res.statusCode ?? 0;
    if (status !== 200) throw httpFailure(what, status, await readBody(res).catch(() => ''));
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      let settled = false;
      const finish = (err?: Error, asIs = false) => {
        if (settled) return;
        settled = true;
        w.signal?.removeEventListener('abort', onAbort);
        if (err) {
          res.destroy();
          reject(
            asIs || err instanceof K8sRequestError ? err : failure(what, `stream broke: ${err.message}`),
          );
        } else resolve();
      };
      const onAbort = () => {
        res.destroy();
        finish();
      };
      w.signal?.addEventListener('abort', onAbort);
      res.setEncoding('utf8');
      /** One line: a garbled one or an ERROR event ends the watch; the handler's own errors pass through. */
      const deliver = (line: string): boolean => {
        let event: WatchEvent;
        try {
          event = parseWatchLine(line);
        } catch (err) {
          finish(err as Error);
          return false;
        }
        if (event.type === 'ERROR') {
          // The API server's Status, e.g. 410 Gone when resourceVersion has been compacted away.
          const code = typeof event.object.code === 'number' ? event.object.code : null;
          finish(failure(what, `ended with an error event: ${reasonOf(JSON.stringify(event.object))}`, code));
          return false;
        }
        try {
          w.onEvent(event);
        } catch (err) {
          finish(err as Error, true);
          return false;
        }
        return true;
      };
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl = buffered.indexOf('\n');
        while (nl >= 0 && !settled) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf('\n');
          if (line !== '' && !deliver(line)) return;
        }
        if (buffered.length > MAX_WATCH_LINE_BYTES) finish(new Error('watch line larger than 1 MB'));
      });
      res.on('end', () => {
        // A last line without a newline still counts.
        const line = buffered.trim();
        if (line !== '' && !settled && !deliver(line)) return;
        finish();
      });
      res.on('error', (err) => (w.signal?.aborted ? finish() : finish(err)));
      res.on('close', () => {
        if (!res.complete && !w.signal?.aborted) finish(new Error('connection closed mid-stream'));
      });
    });
  };

  const patchPodAnnotations = async (
    namespace: string,
    name: string,
    annotations: Record<string, string>,
  ): Promise<boolean> => {
    const what = `pod '${namespace}/${name}' (patch)`;
    const body = JSON.stringify({ metadata: { annotations } });
    const res = await send(
      what,
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
      timeoutMs,
      undefined,
      { method: 'PATCH', contentType: 'application/merge-patch+json', body },
    );
    const status = res.statusCode ?? 0;
    const text = await readBody(res).catch(() => '');
    if (status === 404) return false;
    if (status !== 200) throw httpFailure(what, status, text);
    return true;
  };

  return {
    server,
    patchPodAnnotations,
    readPod: (namespace, name) =>
      get(
        `pod '${namespace}/${name}'`,
        `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(name)}`,
      ),
    readNode: (name) => get(`node '${name}'`, `/api/v1/nodes/${encodeURIComponent(name)}`),
    readEniConfig: (name) =>
      get(`ENIConfig '${name}'`, `${collectionPath('eniconfig')}/${encodeURIComponent(name)}`),
    listByName,
    watchByName,
  };
}
