/**
 * A tiny read-only JSON/text HTTP server shared by introspection and metrics: GET/HEAD only,
 * fixed routes, every error answered as JSON, graceful close.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import { parseBind } from './bind.js';

export interface RouteReply {
  status?: number;
  contentType: string;
  body: string;
}

export type Route = () => Promise<RouteReply> | RouteReply;

export interface HttpServer {
  /** The bound address, e.g. "127.0.0.1:61679" (the real port when bound to port 0). */
  readonly address: string;
  readonly port: number;
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
}): Promise<HttpServer> {
  const { host, port } = parseBind(opts.bind, opts.bindName);
  const { log, routes } = opts;

  const server = createServer((req, res) => {
    serve(req, res, routes).catch((err) => {
      log.error({ err, url: req.url }, 'http route failed');
      send(res, req, jsonReply({ error: `internal error: ${(err as Error).message}` }, 500));
    });
  });
  // Slow or idle clients must not pin sockets: these endpoints answer in milliseconds.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(new Error(`cannot listen on ${opts.bindName} "${opts.bind}": ${err.code ?? err.message}`));
    });
    server.listen({ host, port }, () => resolve());
  });
  server.on('error', (err) => log.error({ err }, 'http server error'));
  const addr = server.address() as AddressInfo;
  const address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  log.info({ address }, `serving ${opts.bindName}`);

  let closing: Promise<void> | undefined;
  return {
    address,
    port: addr.port,
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
