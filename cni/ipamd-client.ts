/**
 * One request/response round trip to ipamd over its Unix socket, with errors mapped to CNI codes:
 * a daemon that is absent, starting, or waiting for its pool to grow is "try again later" (11).
 */
import {
  type AddRequest,
  type AddResult,
  type DelRequest,
  type DelResult,
  type ErrorCode,
  type GcRequest,
  type GcResult,
  type HealthResult,
  PROTOCOL_VERSION,
  type Request,
} from '../lib/protocol/ipamd.js';
import { CniError, Code } from './errors.js';

export interface ClientOptions {
  socketPath: string;
  /** How long to wait for the connection to be accepted. */
  connectTimeoutMs?: number;
  /** How long to wait for the answer once connected (ADD may wait for an ENI to attach). */
  responseTimeoutMs?: number;
}

const DEFAULTS = { connectTimeoutMs: 2_000, responseTimeoutMs: 25_000 };
const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Thrown when the socket cannot be reached at all; DEL falls back to local teardown on it. */
export class IpamdUnreachable extends CniError {}

/** ipamd's error kinds as CNI errors (shared with ipamd's in-process path, ipamd/cni-exec.ts). */
export function mapError(code: ErrorCode | string, message: string, op: string): CniError {
  switch (code) {
    case 'not_ready':
      return new CniError(Code.tryAgainLater, 'ipamd is not ready', `${message}; the runtime will retry`);
    case 'pool_empty':
      return new CniError(
        Code.tryAgainLater,
        'no free address right now',
        // ipamd's message says why (cooling down, growing, waiting for EC2): do not claim more.
        `${message}; the runtime will retry`,
      );
    case 'exhausted':
      return new CniError(Code.noAddress, 'no address available on this node', message);
    case 'forbidden':
      return new CniError(
        Code.ipamdError,
        `ipamd refused the ${op} request`,
        `${message}; run the plugin as root`,
      );
    case 'version_mismatch':
      return new CniError(
        Code.ipamdError,
        'ipamd speaks a different protocol version',
        `${message}; install the aws-cni binary that ships with the running ipamd`,
      );
    default:
      return new CniError(Code.ipamdError, `ipamd rejected the ${op} request (${code})`, message);
  }
}

export function roundTrip(opts: ClientOptions, request: Request): Promise<unknown> {
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
  const responseTimeoutMs = opts.responseTimeoutMs ?? DEFAULTS.responseTimeoutMs;
  const where = `socket ${opts.socketPath}`;
  // node:net is imported here, not at the top: a static import would be hoisted into the bundle's
  // start-up and cost VERSION (and every other command) its load time before it is needed.
  return import('node:net')
    .then(
      ({ createConnection }) =>
        new Promise((resolve, reject) => {
          const socket = createConnection({ path: opts.socketPath });
          let buffer = '';
          let settled = false;
          const finish = (err: Error | null, value?: unknown) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            socket.destroy();
            if (err) reject(err);
            else resolve(value);
          };
          let timer = setTimeout(
            () =>
              finish(
                new IpamdUnreachable(
                  Code.tryAgainLater,
                  'ipamd did not accept the connection',
                  `${where}: no answer within ${connectTimeoutMs} ms; is the aws-node pod healthy?`,
                ),
              ),
            connectTimeoutMs,
          );
          socket.setEncoding('utf8');
          socket.on('connect', () => {
            clearTimeout(timer);
            timer = setTimeout(
              () =>
                finish(
                  new CniError(
                    Code.tryAgainLater,
                    `ipamd did not answer the ${request.op} request`,
                    `${where}: no answer within ${responseTimeoutMs} ms`,
                  ),
                ),
              responseTimeoutMs,
            );
            socket.write(`${JSON.stringify(request)}\n`);
          });
          socket.on('data', (chunk: string) => {
            buffer += chunk;
            if (buffer.length > MAX_RESPONSE_BYTES) {
              finish(
                new CniError(
                  Code.ipamdError,
                  'ipamd answer too large',
                  `${where}: more than ${MAX_RESPONSE_BYTES} bytes`,
                ),
              );
              return;
            }
            const nl = buffer.indexOf('\n');
            if (nl >= 0) finish(null, buffer.slice(0, nl));
          });
          socket.on('end', () => {
            if (buffer.trim() !== '') finish(null, buffer);
            else
              finish(
                new CniError(
                  Code.tryAgainLater,
                  `ipamd closed the connection without answering the ${request.op} request`,
                  `${where}; ipamd may be restarting`,
                ),
              );
          });
          socket.on('error', (err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
              finish(
                new IpamdUnreachable(
                  Code.tryAgainLater,
                  'ipamd is not running on this node',
                  `${where}: ${err.code}; start the aws-node daemon set or check ipamdSocket in the CNI config`,
                ),
              );
            } else if (err.code === 'EACCES') {
              finish(
                new IpamdUnreachable(
                  Code.ipamdError,
                  'cannot open the ipamd socket',
                  `${where}: EACCES; run as root`,
                ),
              );
            } else {
              finish(new CniError(Code.tryAgainLater, `talking to ipamd failed`, `${where}: ${err.message}`));
            }
          });
        }),
    )
    .then((line) => decode(line as string, request.op));
}

function decode(line: string, op: string): unknown {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new CniError(Code.ipamdError, 'ipamd sent an answer that is not JSON', line.slice(0, 200));
  }
  if (msg === null || typeof msg !== 'object') {
    throw new CniError(Code.ipamdError, 'ipamd sent an unexpected answer', line.slice(0, 200));
  }
  const m = msg as {
    v?: unknown;
    ok?: unknown;
    result?: unknown;
    error?: { code?: string; message?: string };
  };
  if (m.ok === true && m.result !== undefined) return m.result;
  if (m.ok === false && m.error)
    return Promise.reject(mapError(m.error.code ?? '', m.error.message ?? '', op));
  throw new CniError(Code.ipamdError, 'ipamd sent an unexpected answer', line.slice(0, 200));
}

/** What the handlers need from ipamd: the socket client, or ipamd itself when it runs the call. */
export interface IpamdApi {
  add(req: Omit<AddRequest, 'v' | 'op'>): Promise<AddResult>;
  del(req: Omit<DelRequest, 'v' | 'op'>): Promise<DelResult>;
  gc(req: Omit<GcRequest, 'v' | 'op'>): Promise<GcResult>;
  health(): Promise<HealthResult>;
}

export class IpamdClient implements IpamdApi {
  constructor(private readonly opts: ClientOptions) {}

  add(req: Omit<AddRequest, 'v' | 'op'>): Promise<AddResult> {
    return roundTrip(this.opts, { v: PROTOCOL_VERSION, op: 'add', ...req }).then(checkAdd);
  }

  del(req: Omit<DelRequest, 'v' | 'op'>): Promise<DelResult> {
    return roundTrip(this.opts, { v: PROTOCOL_VERSION, op: 'del', ...req }).then(checkDel);
  }

  gc(req: Omit<GcRequest, 'v' | 'op'>): Promise<GcResult> {
    return roundTrip(this.opts, { v: PROTOCOL_VERSION, op: 'gc', ...req }) as Promise<GcResult>;
  }

  health(): Promise<HealthResult> {
    return roundTrip(this.opts, { v: PROTOCOL_VERSION, op: 'health' }) as Promise<HealthResult>;
  }
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Validates ipamd's ADD answer before any of it reaches netlink. */
export function checkAdd(raw: unknown): AddResult {
  const r = raw as Partial<AddResult> | null;
  const fail = (what: string) =>
    new CniError(Code.ipamdError, 'ipamd sent an invalid add result', `${what} (got ${JSON.stringify(raw)})`);
  if (r === null || typeof r !== 'object') throw fail('not an object');
  if (typeof r.address !== 'string' || !IPV4.test(r.address)) throw fail('address is not an IPv4 address');
  if (!Number.isInteger(r.deviceNumber) || (r.deviceNumber as number) < 0)
    throw fail('deviceNumber is invalid');
  if (!Number.isInteger(r.routeTable) || (r.routeTable as number) < 1) throw fail('routeTable is invalid');
  if (!Array.isArray(r.vpcCidrs) || !r.vpcCidrs.every((c) => typeof c === 'string' && c.includes('/'))) {
    throw fail('vpcCidrs must be a list of CIDRs');
  }
  if (!r.snat || typeof r.snat.enabled !== 'boolean') throw fail('snat.enabled is missing');
  if (!Number.isInteger(r.mtu) || (r.mtu as number) < 576 || (r.mtu as number) > 9001)
    throw fail('mtu must be 576-9001');
  if (typeof r.vethPrefix !== 'string' || r.vethPrefix.length === 0 || r.vethPrefix.length > 4) {
    throw fail('vethPrefix must be 1-4 characters');
  }
  if (typeof r.hostVethMac !== 'string' || !LOCAL_UNICAST_MAC.test(r.hostVethMac)) {
    throw fail('hostVethMac must be a locally administered unicast MAC');
  }
  return r as AddResult;
}

/** x2, x6, xa, xe in the first octet: locally administered, unicast (what ipamd hands out). */
const LOCAL_UNICAST_MAC = /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/;

/** Validates ipamd's DEL answer: what it names decides what the plugin removes. */
export function checkDel(raw: unknown): DelResult {
  const r = raw as Partial<DelResult> | null;
  const fail = (what: string) =>
    new CniError(Code.ipamdError, 'ipamd sent an invalid del result', `${what} (got ${JSON.stringify(raw)})`);
  if (r === null || typeof r !== 'object') throw fail('not an object');
  if (r.address !== null && (typeof r.address !== 'string' || !IPV4.test(r.address))) {
    throw fail('address must be an IPv4 address or null');
  }
  if (
    r.hostVethMac !== null &&
    (typeof r.hostVethMac !== 'string' || !LOCAL_UNICAST_MAC.test(r.hostVethMac))
  ) {
    throw fail('hostVethMac must be a MAC or null');
  }
  if (!Array.isArray(r.heldByOthers) || !r.heldByOthers.every((a) => typeof a === 'string' && IPV4.test(a))) {
    throw fail('heldByOthers must be a list of IPv4 addresses');
  }
  return r as DelResult;
}
