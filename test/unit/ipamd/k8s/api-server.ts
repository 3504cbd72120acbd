/**
 * A stand-in Kubernetes API server on 127.0.0.1 for ipamd/k8s tests: serves nodes and ENIConfigs
 * from maps as the real one does (404 Status objects for missing ones), over HTTP or HTTPS, and
 * records every request with its Authorization header.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type FakeKind = 'node' | 'eniconfig';

export interface FakeApiServer {
  url: string;
  nodes: Map<string, unknown>;
  eniConfigs: Map<string, unknown>;
  requests: { path: string; authorization: string | undefined }[];
  /** Every request's path and query, in order. */
  urls: string[];
  /** Answer every request with this status (401, 500...) instead of the maps. */
  failWith: number | null;
  /** Answer watch requests (only) with this HTTP status, e.g. 410. */
  failWatchesWith: number | null;
  /** Hold every answer this long (timeouts). */
  delayMs: number;
  /** The last resourceVersion handed out. */
  readonly resourceVersion: number;
  /** Creates or replaces an object: stamps a new resourceVersion and tells the watches (ADDED/MODIFIED). */
  put(kind: FakeKind, name: string, obj: Record<string, unknown>): void;
  /** Deletes an object and tells the watches (DELETED). */
  remove(kind: FakeKind, name: string): void;
  /** Writes a raw line to every open watch of that kind (malformed streams). */
  sendRaw(kind: FakeKind, line: string): void;
  /** Forgets the event history: watches from any earlier version get 410 Gone, as after etcd compaction. */
  compact(): void;
  /** Ends every open watch with a 410 Gone ERROR event. */
  expireWatches(): void;
  /** Cuts every open watch connection mid-stream. */
  dropWatches(): void;
  /** Open watches of that kind (and name). */
  openWatches(kind: FakeKind, name?: string): number;
  close(): Promise<void>;
}

const NODE_PATH = /^\/api\/v1\/nodes\/([^/?]+)$/;
const ENICONFIG_PATH = /^\/apis\/crd\.k8s\.amazonaws\.com\/v1alpha1\/eniconfigs\/([^/?]+)$/;
const COLLECTIONS: Record<string, FakeKind> = {
  '/api/v1/nodes': 'node',
  '/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs': 'eniconfig',
};

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
}

interface HistoryEvent {
  rv: number;
  kind: FakeKind;
  name: string;
  line: string;
}

interface OpenWatch {
  kind: FakeKind;
  name: string | null;
  res: ServerResponse;
}

const GONE = JSON.stringify({
  type: 'ERROR',
  object: {
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    reason: 'Expired',
    code: 410,
    message: 'too old resource version',
  },
});

export async function startFakeApiServer(
  tls?: { key: string; cert: string },
  opts: {
    /** Starts listening (default: an ephemeral port on 127.0.0.1), e.g. inside a network namespace. */
    listen?: (server: Server) => void;
  } = {},
): Promise<FakeApiServer> {
  let rv = 100;
  let compactedAt = 0;
  const history: HistoryEvent[] = [];
  const watches = new Set<OpenWatch>();
  const maps = { node: new Map<string, unknown>(), eniconfig: new Map<string, unknown>() };
  const emit = (kind: FakeKind, name: string, type: string, object: unknown) => {
    const ev = { rv, kind, name, line: `${JSON.stringify({ type, object })}\n` };
    history.push(ev);
    for (const w of watches)
      if (w.kind === kind && (w.name === null || w.name === name)) w.res.write(ev.line);
  };
  const stamp = (obj: Record<string, unknown>, name: string) => {
    rv++;
    const meta = (typeof obj.metadata === 'object' && obj.metadata) || {};
    return { ...obj, metadata: { ...meta, name, resourceVersion: String(rv) } };
  };
  const state = {
    nodes: maps.node,
    eniConfigs: maps.eniconfig,
    requests: [] as FakeApiServer['requests'],
    urls: [] as string[],
    failWith: null as number | null,
    failWatchesWith: null as number | null,
    delayMs: 0,
    get resourceVersion() {
      return rv;
    },
    put(kind: FakeKind, name: string, obj: Record<string, unknown>) {
      const had = maps[kind].has(name);
      const stored = stamp(obj, name);
      maps[kind].set(name, stored);
      emit(kind, name, had ? 'MODIFIED' : 'ADDED', stored);
    },
    remove(kind: FakeKind, name: string) {
      const old = maps[kind].get(name);
      if (old === undefined) return;
      maps[kind].delete(name);
      emit(kind, name, 'DELETED', stamp(old as Record<string, unknown>, name));
    },
    sendRaw(kind: FakeKind, line: string) {
      for (const w of watches) if (w.kind === kind) w.res.write(`${line}\n`);
    },
    compact() {
      compactedAt = rv;
      history.length = 0;
    },
    expireWatches() {
      for (const w of watches) w.res.end(`${GONE}\n`);
      watches.clear();
    },
    dropWatches() {
      for (const w of watches) w.res.socket?.destroy();
      watches.clear();
    },
    openWatches(kind: FakeKind, name?: string) {
      return [...watches].filter((w) => w.kind === kind && (name === undefined || w.name === name)).length;
    },
  };

  const serveCollection = (
    req: IncomingMessage,
    res: ServerResponse,
    kind: FakeKind,
    query: URLSearchParams,
  ) => {
    const selector = query.get('fieldSelector');
    const m = selector === null ? null : /^metadata\.name=([^,]+)$/.exec(selector);
    if (selector !== null && !m)
      return status(res, 400, 'BadRequest', `unsupported fieldSelector ${selector}`);
    const name = m?.[1] ?? null;
    if (query.get('watch') === '1' || query.get('watch') === 'true') {
      if (state.failWatchesWith !== null)
        return status(res, state.failWatchesWith, 'Injected', 'injected watch failure');
      const from = Number(query.get('resourceVersion') ?? rv);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      if (from < compactedAt) return res.end(`${GONE}\n`);
      for (const ev of history) {
        if (ev.rv > from && ev.kind === kind && (name === null || ev.name === name)) res.write(ev.line);
      }
      const w: OpenWatch = { kind, name, res };
      watches.add(w);
      const timeout = Number(query.get('timeoutSeconds') ?? 0);
      const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : null;
      res.on('close', () => {
        watches.delete(w);
        if (timer) clearTimeout(timer);
      });
      req.on('close', () => watches.delete(w));
      return;
    }
    const items = [...maps[kind].entries()]
      .filter(([n]) => name === null || n === name)
      .map(([, o]) => (typeof o === 'string' ? JSON.parse(o) : o));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: kind === 'node' ? 'NodeList' : 'ENIConfigList',
        metadata: { resourceVersion: String(rv) },
        items,
      }),
    );
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const [path = '', search = ''] = (req.url ?? '').split('?');
    const query = new URLSearchParams(search);
    state.requests.push({ path, authorization: req.headers.authorization });
    state.urls.push(req.url ?? '');
    const answer = () => {
      if (state.failWith !== null) return status(res, state.failWith, 'Injected', 'injected failure');
      if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'read-only stand-in');
      const collection = COLLECTIONS[path];
      if (collection) return serveCollection(req, res, collection, query);
      const n = NODE_PATH.exec(path);
      const e = ENICONFIG_PATH.exec(path);
      const [map, kind, name] = n
        ? [state.nodes, 'nodes', n[1]]
        : e
          ? [state.eniConfigs, 'eniconfigs.crd.k8s.amazonaws.com', e[1]]
          : [null, '', ''];
      if (!map)
        return status(res, 404, 'NotFound', `the server could not find the requested resource ${path}`);
      const obj = map.get(decodeURIComponent(name ?? ''));
      if (obj === undefined) return status(res, 404, 'NotFound', `${kind} "${name}" not found`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(typeof obj === 'string' ? obj : JSON.stringify(obj));
    };
    if (state.delayMs > 0) setTimeout(answer, state.delayMs);
    else answer();
  };
  const server = tls ? createHttpsServer(tls, handle) : createHttpServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
    (opts.listen ?? ((s) => s.listen(0, '127.0.0.1')))(server);
  });
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** A self-signed certificate for 127.0.0.1 (openssl), as files in `dir`. */
export function selfSignedCert(dir: string): {
  key: string;
  cert: string;
  keyFile: string;
  certFile: string;
} {
  const keyFile = join(dir, 'tls.key');
  const certFile = join(dir, 'tls.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-subj',
      '/CN=kubernetes',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), keyFile, certFile };
}

/** A kubeconfig pointing at `server` with a bearer token (and the CA that signed the server's certificate), written into `dir`. */
/** A pod's service account directory (token, ca.crt) under `dir`, as kubelet mounts it; returns its path. */
export function writeServiceAccount(
  dir: string,
  token: string,
  caCert: string,
  name = 'serviceaccount',
): string {
  const sa = join(dir, name);
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), token);
  writeFileSync(join(sa, 'ca.crt'), caCert);
  return sa;
}

export function writeKubeconfig(
  dir: string,
  server: string,
  token: string,
  caCert?: string,
  name = 'kubeconfig',
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      ...(caCert ? [`    certificate-authority-data: ${Buffer.from(caCert).toString('base64')}`] : []),
      'users:',
      '- name: ipamd',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: test',
      '  context: {cluster: test, user: ipamd}',
      'current-context: test',
      '',
    ].join('\n'),
  );
  return path;
}

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vpccni-k8s-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
