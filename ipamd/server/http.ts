/**
 * A tiny read-only JSON/text HTTP server shared by introspection and metrics: GET/HEAD only,
 * fixed routes, every error answered as JSON, graceful close.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
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
  /** The bound address, e.g. "127.0.0.1:61679" (the real port when bound to port 0) or "unix:/path". */
  readonly address: string;
  /** 0 on a Unix socket. */
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
  // `unix:<path>` (INTROSPECTION_BIND_ADDRESS, as the reference allows): a root-only Unix socket.
  const unixPath = opts.bind.startsWith('unix:') ? opts.bind.slice('unix:'.length) : null;
  const { host, port } =
    unixPath === null ? parseBind(opts.bind, opts.bindName) : { host: undefined, port: 0 };
  const { log, routes } = opts;
  if (unixPath !== null) await removeStaleSocket(unixPath, opts.bindName);

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
