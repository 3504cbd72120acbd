/**
 * A stand-in Kubernetes API server on 127.0.0.1 for ipamd/k8s tests: serves nodes and ENIConfigs
 * from maps as the real one does (404 Status objects for missing ones), over HTTP or HTTPS, and
 * records every request with its Authorization header.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeApiServer {
  url: string;
  nodes: Map<string, unknown>;
  eniConfigs: Map<string, unknown>;
  requests: { path: string; authorization: string | undefined }[];
  /** Answer every request with this status (401, 500...) instead of the maps. */
  failWith: number | null;
  /** Hold every answer this long (timeouts). */
  delayMs: number;
  close(): Promise<void>;
}

const NODE_PATH = /^\/api\/v1\/nodes\/([^/?]+)$/;
const ENICONFIG_PATH = /^\/apis\/crd\.k8s\.amazonaws\.com\/v1alpha1\/eniconfigs\/([^/?]+)$/;

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
}

export async function startFakeApiServer(tls?: { key: string; cert: string }): Promise<FakeApiServer> {
  const state: Omit<FakeApiServer, 'url' | 'close'> = {
    nodes: new Map(),
    eniConfigs: new Map(),
    requests: [],
    failWith: null,
    delayMs: 0,
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    state.requests.push({ path, authorization: req.headers.authorization });
    const answer = () => {
      if (state.failWith !== null) return status(res, state.failWith, 'Injected', 'injected failure');
      if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'read-only stand-in');
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
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
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
