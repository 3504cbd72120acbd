/**
 * The ipamd Unix-socket server: one NDJSON request line per connection, one response line, close.
 * Speaks lib/protocol/ipamd.ts; the daemon's logic sits behind an IpamHandler.
 *
 * Hardening, because anything on the node that can reach the socket is a client:
 * - who is calling is the kernel's word (SO_PEERCRED, taken at connect): only root may run `cni`,
 *   `add`, `del` and `gc`; anyone else who can reach the socket (IPAMD_SOCKET_GROUP) may only ask for
 *   `health`;
 * - the request is read natively (lib/net/sys.ts recvRequest), never by Node's stream reader, so the
 *   NETLINK_ROUTE socket the CNI shim sends along (SCM_RIGHTS) arrives instead of being dropped; at
 *   most one descriptor is kept, and only a root `cni` call may hand one over;
 * - the request line is capped at MAX_REQUEST_BYTES and must arrive within `readTimeoutMs`;
 * - malformed, oversized, unknown or wrong-version requests get an error line, never a crash, and
 *   the log of refusals is rate-limited so a flood cannot fill the disk;
 * - the socket file is created in a private directory, chmod-ed, then renamed into place, so it is
 *   never reachable with looser permissions than `mode`, even for an instant.
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, rename, rmdir, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { type PeerCred, sys } from '../../lib/net/sys.js';
import {
  type CniOutcome,
  type CniRequest,
  cniFrame,
  type ErrorCode,
  errorLine,
  MAX_REQUEST_BYTES,
  okLine,
  ProtocolError,
  parseRequest,
  type Request,
} from '../../lib/protocol/ipamd.js';
import { type Logger, withComponent } from '../log.js';
import type { IpamHandler } from './handler.js';

export interface SocketServerOptions {
  path: string;
  /** File mode of the socket: 0o600 (root only, the default) or 0o660 (root and `gid`). */
  mode?: number;
  /** Group owning the socket (root:<gid>); needs mode 0o660. Unset: the process's own group. */
  gid?: number;
  handler: IpamHandler;
  /**
   * Runs a whole CNI call forwarded by the native shim (op "cni"); without it such calls are refused.
   * `fds` are the descriptors that came with the request (the pod's netlink socket): the runner owns
   * them from here on and must close every one.
   */
  cni?: (req: CniRequest, fds: number[]) => Promise<CniOutcome>;
  log: Logger;
  /** How long a client has to send its whole request line. */
  readTimeoutMs?: number;
  /** Connections beyond this are refused by the kernel backlog instead of piling up. */
  maxConnections?: number;
}

export interface SocketServer {
  readonly path: string;
  /** Stops accepting, answers idle connections with not_ready, waits for in-flight requests. */
  close(): Promise<void>;
}

export const DEFAULT_READ_TIMEOUT_MS = 5_000;
const ALLOWED_MODES = new Set([0o600, 0o660]);
// sockaddr_un.sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = 107;

export async function startSocketServer(opts: SocketServerOptions): Promise<SocketServer> {
  const mode = opts.mode ?? 0o600;
  if (!ALLOWED_MODES.has(mode)) {
    throw new Error(`socket mode must be 0600 or 0660, got 0${mode.toString(8)}`);
  }
  if (opts.gid !== undefined) {
    if (!Number.isInteger(opts.gid) || opts.gid < 0 || opts.gid > 2 ** 32 - 2) {
      throw new Error(`socket group must be a gid between 0 and ${2 ** 32 - 2}, got ${opts.gid}`);
    }
    if (mode !== 0o660) {
      throw new Error(`a socket group (gid ${opts.gid}) needs mode 0660, got 0${mode.toString(8)}`);
    }
  }
  if (!opts.path.startsWith('/')) {
    throw new Error(`socket path must be absolute, got "${opts.path}"`);
  }
  if (Buffer.byteLength(opts.path) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`socket path "${opts.path}" is longer than ${MAX_SOCKET_PATH_BYTES} bytes`);
  }
  const readTimeoutMs = opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const log = withComponent(opts.log, 'socket');

  await mkdir(dirname(opts.path), { recursive: true, mode: 0o755 });
  await removeStaleSocket(opts.path);

  const connections = new Set<Connection>();
  const refusals = new RateLimitedLog(log);
  // Paused on connect: Node must never read a connection itself (it would drop passed descriptors).
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
    const conn = new Connection(sock, opts.handler, opts.cni, refusals, readTimeoutMs, () =>
      connections.delete(conn),
    );
    connections.add(conn);
  });
  server.maxConnections = opts.maxConnections ?? 1024;
  server.on('error', (err) => log.error({ err }, 'socket server error'));

  const ino = await listenPrivately(server, opts.path, mode, opts.gid);
  log.info(
    { path: opts.path, mode: `0${mode.toString(8)}`, ...(opts.gid !== undefined ? { gid: opts.gid } : {}) },
    'serving ipamd socket',
  );

  let closing: Promise<void> | undefined;
  return {
    path: opts.path,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([...connections].map((c) => c.shutdown()));
        await stopped;
        await unlinkIfOurs(opts.path, ino);
        log.info({ path: opts.path }, 'ipamd socket closed');
      })();
      return closing;
    },
  };
}

/** Descriptors a request may carry: the pod's netlink socket. */
const MAX_PASSED_FDS = 1;
/** Ops anyone who can reach the socket may call; everything else needs root. */
const UNPRIVILEGED_OPS = new Set(['health']);

/**
 * At most `burst` lines per `windowMs`, then one line saying how many were suppressed: a client that
 * floods the socket with garbage must not flood the log too.
 */
export class RateLimitedLog {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly burst = 20,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  write(level: 'info' | 'warn', obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) {
        this.log.warn(
          { suppressed: this.suppressed, windowMs: this.windowMs },
          'request refusals not logged',
        );
      }
      this.windowStart = t;
      this.count = 0;
      this.suppressed = 0;
    }
    if (this.count++ < this.burst) this.log[level](obj, msg);
    else this.suppressed++;
  }

  debug(obj: Record<string, unknown>, msg: string): void {
    this.log.debug(obj, msg);
  }
}

/** One client connection: read one line (and any descriptor sent with it), answer it, end. */
class Connection {
  private state: 'reading' | 'handling' | 'done' = 'reading';
  private inFlight: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;
  private readonly started = process.hrtime.bigint();
  private reader: { cancel(): void } | undefined;
  private cred: PeerCred | undefined;

  constructor(
    private readonly sock: Socket,
    private readonly handler: IpamHandler,
    private readonly cni: SocketServerOptions['cni'],
    private readonly log: RateLimitedLog,
    readTimeoutMs: number,
    private readonly onClosed: () => void,
  ) {
    this.timer = setTimeout(() => {
      this.reject('bad_request', `no complete request line within ${readTimeoutMs} ms`);
    }, readTimeoutMs);
    // Clients that vanish (EPIPE, ECONNRESET) are normal; the handler's work still completes.
    sock.on('error', (err) => this.log.debug({ err }, 'client connection error'));
    sock.on('close', () => {
      clearTimeout(this.timer);
      this.reader?.cancel();
      this.onClosed();
    });
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    try {
      if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no descriptor');
      this.cred = sys().peerCred(fd);
      this.reader = sys().recvRequest(fd, MAX_REQUEST_BYTES + 1, MAX_PASSED_FDS, (err, got) => {
        this.reader = undefined;
        if (err || !got)
          this.reject('bad_request', `reading the request failed: ${err?.message ?? 'no data'}`);
        else this.onRequest(got.data, got.fds, got.eof);
      });
    } catch (err) {
      this.reject('internal', `cannot read the request: ${(err as Error).message}`);
    }
  }

  /** Called by close(): idle connections are told to retry, in-flight ones are waited for. */
  shutdown(): Promise<void> {
    if (this.state === 'reading') this.reject('not_ready', 'ipamd is shutting down; retry');
    return this.inFlight;
  }

  private onRequest(data: Buffer, fds: number[], eof: boolean): void {
    if (this.state !== 'reading') {
      closeFds(fds);
      return;
    }
    const nl = data.indexOf(0x0a);
    if (nl === -1) {
      closeFds(fds);
      if (data.length > MAX_REQUEST_BYTES)
        this.reject('bad_request', `request larger than ${MAX_REQUEST_BYTES} bytes`);
      else if (eof)
        this.reject('bad_request', 'connection ended before a complete request line (missing newline)');
      else this.reject('bad_request', `request larger than ${MAX_REQUEST_BYTES} bytes`);
      return;
    }
    if (nl > MAX_REQUEST_BYTES) {
      closeFds(fds);
      this.reject('bad_request', `request larger than ${MAX_REQUEST_BYTES} bytes`);
      return;
    }
    this.state = 'handling';
    clearTimeout(this.timer);
    this.inFlight = this.handle(data.subarray(0, nl).toString('utf8'), fds);
  }

  private async handle(line: string, fds: number[]): Promise<void> {
    let req: Request | undefined;
    let reply: string;
    try {
      req = parseRequest(line);
      this.authorize(req.op);
      if (req.op === 'cni') {
        const handed = fds;
        fds = []; // the runner owns and closes them from here on, whatever happens
        reply = cniFrame(await this.runCni(req, handed));
      } else {
        if (fds.length > 0) throw new ProtocolError('bad_request', `op "${req.op}" takes no descriptors`);
        reply = okLine(await this.dispatch(req));
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        reply = errorLine(err.code, err.message);
        // Retryable answers are routine while the pool grows; malformed requests deserve attention.
        const level = err.code === 'not_ready' || err.code === 'pool_empty' ? 'info' : 'warn';
        this.log.write(
          level,
          { op: req?.op, code: err.code, msg: err.message, uid: this.cred?.uid },
          'request refused',
        );
      } else {
        const message = err instanceof Error ? err.message : String(err);
        reply = errorLine('internal', `ipamd internal error: ${message}`);
        this.log.write('warn', { op: req?.op, err }, 'request handler failed');
      }
    } finally {
      closeFds(fds);
    }
    this.log.debug({ op: req?.op, ms: this.elapsedMs() }, 'request served');
    await this.finish(reply);
  }

  /** The kernel's word on who called decides what they may do. */
  private authorize(op: string): void {
    if (UNPRIVILEGED_OPS.has(op)) return;
    const uid = this.cred?.uid;
    if (uid !== 0) {
      throw new ProtocolError(
        'forbidden',
        `op "${op}" needs root (the caller is uid ${uid ?? 'unknown'}); the socket group may only ask for health`,
      );
    }
  }

  private runCni(req: CniRequest, fds: number[]): Promise<CniOutcome> {
    if (!this.cni) {
      closeFds(fds);
      return Promise.reject(new ProtocolError('bad_request', 'this ipamd does not run forwarded CNI calls'));
    }
    return this.cni(req, fds);
  }

  private dispatch(req: Exclude<Request, CniRequest>): Promise<unknown> {
    switch (req.op) {
      case 'add':
        return this.handler.add(req);
      case 'del':
        return this.handler.del(req);
      case 'gc':
        return this.handler.gc(req);
      case 'health':
        return this.handler.health();
    }
  }

  private reject(code: ErrorCode, message: string): void {
    if (this.state !== 'reading') return;
    this.state = 'handling';
    clearTimeout(this.timer);
    this.reader?.cancel();
    this.reader = undefined;
    this.log.write('warn', { code, msg: message, uid: this.cred?.uid }, 'request rejected');
    this.inFlight = this.finish(errorLine(code, message));
  }

  /** Writes the response and closes; resolves when the socket is gone either way. */
  private finish(reply: string): Promise<void> {
    this.state = 'done';
    return new Promise<void>((resolve) => {
      if (this.sock.destroyed) return resolve();
      this.sock.once('close', () => resolve());
      // Nothing more is read from this connection: close it as soon as the answer is flushed.
      this.sock.end(reply, () => this.sock.destroy());
      // A client that never reads cannot hold the connection open forever.
      setTimeout(() => this.sock.destroy(), DEFAULT_READ_TIMEOUT_MS).unref();
    });
  }

  private elapsedMs(): number {
    return Number(process.hrtime.bigint() - this.started) / 1e6;
  }
}

function closeFds(fds: number[]): void {
  for (const fd of fds.splice(0)) {
    try {
      sys().close(fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Removes a socket file left by a previous ipamd that died. Refuses to remove a live socket (another
 * ipamd is serving it) or anything that is not a socket (a wrong path must not delete a file).
 */
async function removeStaleSocket(path: string): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new Error(
      `${path} exists and is not a socket; refusing to replace it (remove it or set IPAMD_SOCKET_PATH)`,
    );
  }
  if (await isListening(path)) {
    throw new Error(`${path} is served by another running process (is another ipamd running?)`);
  }
  await unlink(path);
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Listens in a private 0700 directory, sets mode/owner, then renames the socket into place. */
async function listenPrivately(server: Server, path: string, mode: number, gid?: number): Promise<bigint> {
  const dir = join(dirname(path), `.ipamd-sock-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  const tmp = join(dir, 's');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Owner and group before the mode: group access is granted only once the group is the right one.
    if (gid !== undefined) await chown(tmp, process.getuid?.() ?? 0, gid);
    await chmod(tmp, mode);
    await rename(tmp, path);
    return (await lstat(path, { bigint: true })).ino;
  } catch (err) {
    server.close();
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
    await rmdir(dir).catch(() => {});
  }
}

/** Only remove the socket file if it is still the one we created (a successor may have replaced it). */
async function unlinkIfOurs(path: string, ino: bigint): Promise<void> {
  try {
    const st = await lstat(path, { bigint: true });
    if (st.ino === ino) await unlink(path);
  } catch {
    // already gone
  }
}
