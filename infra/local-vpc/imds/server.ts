/**
 * The IMDS emulator: IMDSv2 over HTTP for every instance of the EC2 model, answering each caller
 * with its own instance's metadata.
 *
 * API:
 *   startImdsServer({ state, resolveInstance?, lagMs?, allowV1?, port?, host?, now? })
 *     -> Promise<{ url, port, setLagMs(ms), setAllowV1(b), close() }>
 *   createImds(opts) -> { handler(req, res), setLagMs, setAllowV1, injectError, clearErrors,
 *                         requestCount, resetCounts, stop() }   (to mount elsewhere)
 * `resolveInstance(remoteAddress, req)` names the calling instance (default: the instance that owns
 * the source address). The fabric serves this inside the router namespace on 169.254.169.254:80.
 *
 * Behaviour, as the real service:
 * - PUT /latest/api/token with `X-aws-ec2-metadata-token-ttl-seconds` 1..21600 returns a token
 *   bound to the calling instance (400 when the header is missing or out of range, 403 when the
 *   request carries X-Forwarded-For, as a proxied request would).
 * - GET with `X-aws-ec2-metadata-token`: 401 when the token is unknown, expired or another
 *   instance's; without a token 401 unless IMDSv1 is allowed (`allowV1`, default false).
 * - Paths under /latest/meta-data/ and /latest/dynamic/instance-identity/document; directories
 *   list their entries one per line, sub-directories with a trailing '/'; unknown paths are 404.
 * - IMDS lags EC2: a change to an instance becomes visible `lagMs` after it happened (default 0).
 * Test controls: injectError({status?, count? | probability?, pathPrefix?}) fails matching GETs
 * (token requests included when the prefix matches /latest/api/token); requestCount(pathPrefix?)
 * counts the requests answered, per path, so tests can assert how often a client polls.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Ec2State } from '../ec2/state.js';
import { buildMetadata, lookupMetadata, type MetadataTree } from './metadata.js';

export const TOKEN_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const MAX_TTL = 21600;

export interface ImdsOptions {
  state: Ec2State;
  resolveInstance?: (remoteAddress: string, req: IncomingMessage) => string | undefined;
  lagMs?: number;
  allowV1?: boolean;
  /** Clock for token expiry (ms); tests may pass a fake one. */
  now?: () => number;
}

export interface ImdsServerOptions extends ImdsOptions {
  port?: number;
  host?: string;
}

export interface ImdsErrorInjection {
  /** HTTP status to answer with (default 500). */
  status?: number;
  /** Fail the next `count` matching requests... */
  count?: number;
  /** ...or each matching request with this probability. */
  probability?: number;
  /** Only requests whose path starts with this (default: every path). */
  pathPrefix?: string;
}

export interface Imds {
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  setLagMs(ms: number): void;
  setAllowV1(allow: boolean): void;
  injectError(spec: ImdsErrorInjection): void;
  clearErrors(): void;
  /** Requests answered (any status) whose path starts with `pathPrefix` (default all). */
  requestCount(pathPrefix?: string): number;
  resetCounts(): void;
  /** Stops listening to the model and cancels pending (lagged) updates. */
  stop(): void;
}

export interface ImdsServer
  extends Pick<
    Imds,
    'setLagMs' | 'setAllowV1' | 'injectError' | 'clearErrors' | 'requestCount' | 'resetCounts'
  > {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface Token {
  instanceId: string;
  expiresAt: number;
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string>;
}

function reply(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return { status, body, headers };
}

export function createImds(opts: ImdsOptions): Imds {
  const { state } = opts;
  const now = opts.now ?? Date.now;
  const resolve =
    opts.resolveInstance ?? ((addr: string) => state.instanceByAddress(addr.replace(/^::ffff:/, ''))?.id);
  let lagMs = validLag(opts.lagMs ?? 0);
  let allowV1 = opts.allowV1 ?? false;
  const tokens = new Map<string, Token>();
  /** What IMDS currently shows per instance; undefined = not (or no longer) running. */
  const published = new Map<string, MetadataTree | undefined>();
  const timers = new Set<NodeJS.Timeout>();
  let injections: ImdsErrorInjection[] = [];
  const counts = new Map<string, number>();

  /** The injected status for this request, if an injection fires. */
  function injectedStatus(path: string): number | undefined {
    for (const e of injections) {
      if (!path.startsWith(e.pathPrefix ?? '/')) continue;
      let fire = false;
      if (e.count !== undefined && e.count > 0) {
        e.count--;
        fire = true;
      } else if (e.probability !== undefined) fire = Math.random() < e.probability;
      injections = injections.filter((x) => x.count === undefined || x.count > 0);
      if (fire) return e.status ?? 500;
    }
    return undefined;
  }

  const publish = (instanceId: string, tree: MetadataTree | undefined) => published.set(instanceId, tree);

  // Instances that exist already are visible at once, as are new launches; later changes lag.
  for (const i of state.instances()) publish(i.id, buildMetadata(state, i.id));
  const onLaunched = ({ instanceId }: { instanceId: string }) =>
    publish(instanceId, buildMetadata(state, instanceId));
  const onChanged = ({ instanceId }: { instanceId: string }) => {
    const tree = buildMetadata(state, instanceId);
    if (lagMs === 0 || !published.has(instanceId)) {
      publish(instanceId, tree);
      return;
    }
    const t = setTimeout(() => {
      timers.delete(t);
      publish(instanceId, tree);
    }, lagMs);
    timers.add(t);
  };
  state.on('instance-launched', onLaunched);
  state.on('instance-changed', onChanged);

  function answer(req: IncomingMessage): Reply {
    // Collapse repeated slashes: the SDK's MetadataService asks for `//latest/...`, which IMDS accepts.
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/{2,}/g, '/');
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const injected = injectedStatus(path);
    if (injected !== undefined) return reply(injected, 'Injected failure (local VPC)\n');
    const instanceId = resolve(req.socket.remoteAddress ?? '', req);
    if (!instanceId) return reply(404, `No instance owns the caller's address ${req.socket.remoteAddress}\n`);
    if (req.method === 'PUT') {
      if (path !== '/latest/api/token') return reply(403, 'Forbidden\n');
      if (req.headers['x-forwarded-for'] !== undefined) return reply(403, 'Forbidden\n');
      const ttlText = req.headers[TOKEN_TTL_HEADER];
      const ttl = typeof ttlText === 'string' && /^\d+$/.test(ttlText) ? Number(ttlText) : Number.NaN;
      if (!(ttl >= 1 && ttl <= MAX_TTL)) {
        return reply(400, `Bad Request: ${TOKEN_TTL_HEADER} must be 1..${MAX_TTL}\n`);
      }
      const token = randomBytes(30).toString('base64url');
      tokens.set(token, { instanceId, expiresAt: now() + ttl * 1000 });
      return reply(200, token, { [TOKEN_TTL_HEADER]: String(ttl) });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'Method Not Allowed\n');

    const headers: Record<string, string> = {};
    const tokenText = req.headers[TOKEN_HEADER];
    if (typeof tokenText === 'string') {
      const token = tokens.get(tokenText);
      if (!token || token.expiresAt <= now() || token.instanceId !== instanceId) {
        if (token && token.expiresAt <= now()) tokens.delete(tokenText);
        return reply(401, 'Unauthorized\n');
      }
      headers[TOKEN_TTL_HEADER] = String(Math.ceil((token.expiresAt - now()) / 1000));
    } else if (!allowV1) {
      return reply(401, 'Unauthorized\n');
    }

    if (path === '/') return reply(200, 'latest', headers);
    if (!path.startsWith('/latest/')) return reply(404, 'Not Found\n');
    const tree = published.get(instanceId);
    if (!tree) return reply(404, 'Not Found\n');
    const found = lookupMetadata(tree, path.slice('/latest/'.length));
    if (found.kind === 'missing') return reply(404, 'Not Found\n');
    const isDocument = path.endsWith('/instance-identity/document');
    return reply(200, found.body, {
      ...headers,
      ...(isDocument ? { 'content-type': 'application/json' } : {}),
    });
  }

  function handler(req: IncomingMessage, res: ServerResponse): void {
    const r = answer(req);
    res.writeHead(r.status, { 'content-type': 'text/plain', ...r.headers });
    res.end(req.method === 'HEAD' ? undefined : r.body);
  }

  return {
    handler,
    setLagMs: (ms) => {
      lagMs = validLag(ms);
    },
    setAllowV1: (allow) => {
      allowV1 = allow;
    },
    injectError: (spec) => {
      const status = spec.status ?? 500;
      if (!(status >= 400 && status <= 599)) throw new Error('status must be 4xx or 5xx');
      if ((spec.count === undefined) === (spec.probability === undefined)) {
        throw new Error('give exactly one of count (next N requests) or probability (0..1)');
      }
      if (spec.count !== undefined && !(Number.isInteger(spec.count) && spec.count > 0)) {
        throw new Error('count must be a positive integer');
      }
      if (spec.probability !== undefined && !(spec.probability >= 0 && spec.probability <= 1)) {
        throw new Error('probability must be between 0 and 1');
      }
      injections.push({ ...spec, status });
    },
    clearErrors: () => {
      injections = [];
    },
    requestCount: (pathPrefix = '/') => {
      let n = 0;
      for (const [path, c] of counts) if (path.startsWith(pathPrefix)) n += c;
      return n;
    },
    resetCounts: () => counts.clear(),
    stop: () => {
      state.off('instance-launched', onLaunched);
      state.off('instance-changed', onChanged);
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}

function validLag(ms: number): number {
  if (!(ms >= 0 && Number.isFinite(ms)))
    throw new Error(`IMDS lag must be a finite number of ms >= 0, got ${ms}`);
  return ms;
}

export async function startImdsServer(opts: ImdsServerOptions): Promise<ImdsServer> {
  const imds = createImds(opts);
  const server = createServer(imds.handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  }).catch((e) => {
    imds.stop();
    throw e;
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    setLagMs: imds.setLagMs,
    setAllowV1: imds.setAllowV1,
    injectError: imds.injectError,
    clearErrors: imds.clearErrors,
    requestCount: imds.requestCount,
    resetCounts: imds.resetCounts,
    close: () =>
      new Promise<void>((resolve) => {
        imds.stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
