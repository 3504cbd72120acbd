/**
 * A tiny read-only JSON/text HTTP server shared by introspection and metrics: GET/HEAD only,
 * fixed routes, every error answered as JSON, graceful close. Every listener is bounded (HttpLimits):
 * a connection cap (conn-guard.ts) and timeouts for idle, slow and never-finishing clients.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { parseBind } from './bind.js';
import { guardConnections } from './conn-guard.js';

/** What one listener allows a client; these endpoints answer in milliseconds, so all are tight. */
export interface HttpLimits {
  /** Connections held at once; over it the longest-idle one is closed (conn-guard.ts). */
  maxConnections: number;
  /** A connection that sends nothing (before or between requests) is closed after this. */
  idleTimeoutMs: number;
  /** The request headers must be in within this (slow-loris). */
  headersTimeoutMs: number;
  /** The whole request within this. */
  requestTimeoutMs: number;
  /** Kept open this long after a response, for the next request. */
  keepAliveTimeoutMs: number;
  /** Largest request header block, in bytes. */
  maxHeaderBytes: number;
}

export const HTTP_LIMITS: HttpLimits = {
  maxConnections: 64,
  idleTimeoutMs: 10_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 8 * 1024,
};

export interface RouteReply {
  status?: number;
  contentType: string;
  body: string;
}

export type Route = () => Promise<RouteReply> | RouteReply;

export interface HttpServer {
  /** The bound address, e.g. "127.0.0.1:61679" (the real port when bound to port 0) or "unix:/path". */
  readonly address: string;
  /** 0 on a Unix socket. */
  readonly port: number;
  /** Connections held now (at most the cap). */
  readonly connections: number;
  close(): Promise<void>;
}

const CLOSE_GRACE_MS = 2_000;

export function jsonReply(value: unknown, status = 200): RouteReply {
  return { status, contentType: 'application/json', body: `${JSON.stringify(value, null, 2)}\n` };
}

export async function startHttpServer(opts: {
  bind: string;
  bindName: string;
  routes: Record<string, Route>;
  log: Logger;
  /** For tests: tighter limits than HTTP_LIMITS. */
  limits?: Partial<HttpLimits>;
}): Promise<HttpServer> {
  // `unix:<path>` (INTROSPECTION_BIND_ADDRESS, as the reference allows): a root-only Unix socket.
  const unixPath = opts.bind.startsWith('unix:') ? opts.bind.slice('unix:'.length) : null;
  const { host, port } =
    unixPath === null ? parseBind(opts.bind, opts.bindName) : { host: undefined, port: 0 };
  const { log, routes } = opts;
  const limits = { ...HTTP_LIMITS, ...opts.limits };
  if (unixPath !== null) await removeStaleSocket(unixPath, opts.bindName);

  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // How often the header/request deadlines are enforced (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    (req, res) => {
      guard.busy(req.socket, true);
      res.once('close', () => guard.busy(req.socket, false));
      serve(req, res, routes).catch((err) => {
        log.error({ err, url: req.url }, 'http route failed');
        send(res, req, jsonReply({ error: `internal error: ${(err as Error).message}` }, 500));
      });
    },
  );
  // Sockets that stay silent are closed (the server destroys them when nobody handles 'timeout').
  server.timeout = limits.idleTimeoutMs;
  const guard = guardConnections(server, limits.maxConnections, log, opts.bindName);

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${opts.bindName} "${opts.bind}": ${err.code ?? err.message}`));
    });
    if (unixPath !== null) server.listen({ path: unixPath }, () => resolve());
    else server.listen({ host, port }, () => resolve());
  });
  server.on('error', (err) => log.error({ err }, 'http server error'));
  let address: string;
  let boundPort = 0;
  if (unixPath !== null) {
    await chmod(unixPath, 0o600);
    address = `unix:${unixPath}`;
  } else {
    const addr = server.address() as AddressInfo;
    address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
    boundPort = addr.port;
  }
  log.info({ address }, `serving ${opts.bindName}`);

  let closing: Promise<void> | undefined;
  return {
    address,
    port: boundPort,
    get connections() {
      return guard.size;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
      });
      return closing;
    },
  };
}

/** A socket file left by an earlier run is replaced; anything else at that path is an error. */
async function removeStaleSocket(path: string, bindName: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (!st) return;
  if (!st.isSocket())
    throw new Error(`cannot listen on ${bindName} "unix:${path}": it exists and is not a socket`);
  await unlink(path);
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  routes: Record<string, Route>,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, req, jsonReply({ error: `method ${req.method} not allowed; use GET` }, 405));
    return;
  }
  const pathname = new URL(req.url ?? '/', 'http://x').pathname;
  const route = routes[pathname];
  if (!route) {
    send(res, req, jsonReply({ error: `no such path ${pathname}`, paths: Object.keys(routes) }, 404));
    return;
  }
  send(res, req, await route());
}

function send(res: ServerResponse, req: IncomingMessage, reply: RouteReply): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(reply.status ?? 200, {
    'Content-Type': reply.contentType,
    'Content-Length': Buffer.byteLength(reply.body),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}
