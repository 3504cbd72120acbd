// A NETLINK_ROUTE socket with request/ack and dump handling, on top of the `netlink` package's native
// socket binding (libuv-polled, no thread pool). We use only that binding, not the package's JS
// layers: they cost ~30 ms to load, do not expose NLM_F_DUMP_INTR, and cannot load from a bundle.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetlinkError } from './errors.js';
import {
  formatMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  splitMessages,
} from './nlmsg.js';

const NETLINK_ROUTE = 0;

interface NativeNetlink {
  bind(port: number, groups: number): void;
  send(port: number, groups: number, data: Buffer, cb: (err?: Error) => void): void;
  close(): void;
  ref(): void;
  unref(): void;
  setRecvBufferSize(size: number): void;
}
interface NetlinkBinding {
  NativeNetlink: new (
    protocol: number,
    msgBuffer: number,
    onMessage: (buf: Buffer, rinfo: { port: number; truncated?: number }) => void,
    onError: (err: Error) => void,
  ) => NativeNetlink;
}

let binding: NetlinkBinding | undefined;

/**
 * Finds the netlink package's compiled binding: `netlink.node` next to a bundle (scripts/build.mjs
 * copies it to dist/), else inside node_modules/netlink (built or prebuilt for this arch).
 */
function loadBinding(): NetlinkBinding {
  if (binding) return binding;
  const req = createRequire(import.meta.url);
  const candidates: string[] = [];
  const override = process.env['VPCCNI_NETLINK_ADDON'];
  if (override) candidates.push(override);
  // Next to the bundle, or one directory up from a chunk of a split bundle (dist/ipamd-chunks/).
  candidates.push(
    fileURLToPath(new URL('./netlink.node', import.meta.url)),
    fileURLToPath(new URL('../netlink.node', import.meta.url)),
  );
  try {
    const pkgDir = dirname(req.resolve('netlink/package.json'));
    candidates.push(
      join(pkgDir, 'build/Release/netlink_binding.node'),
      join(pkgDir, `prebuilds/${process.platform}-${process.arch}/node.napi.node`),
    );
  } catch {
    // not installed next to this file (a bundle deployed alone): only the bundle-relative path applies
  }
  const failures: string[] = [];
  for (const file of candidates) {
    try {
      const mod = req(file) as Partial<NetlinkBinding>;
      if (typeof mod.NativeNetlink !== 'function') throw new Error('does not export NativeNetlink');
      binding = mod as NetlinkBinding;
      return binding;
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `netlink socket binding not found; run "npm run build" (copies it to dist/netlink.node). Tried:\n  ${failures.join('\n  ')}`,
  );
}

export interface NlReply {
  type: number;
  flags: number;
  payload: Buffer;
}

interface Pending {
  operation: string;
  replies: NlReply[];
  interrupted: boolean;
  resolve(r: { replies: NlReply[]; interrupted: boolean }): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** How often an interrupted dump (the table changed while being read) is restarted. */
const DUMP_ATTEMPTS = 5;
const DEFAULT_TIMEOUT_MS = 10_000;

export class NlSocket {
  private readonly native: NativeNetlink;
  private readonly pending = new Map<number, Pending>();
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private closed = false;

  /** Creates the socket in the calling thread's current network namespace (see inNetns). */
  constructor(readonly timeoutMs = DEFAULT_TIMEOUT_MS) {
    const { NativeNetlink } = loadBinding();
    // msgBuffer 0: peek each datagram's size first, so large dump chunks are never truncated.
    this.native = new NativeNetlink(
      NETLINK_ROUTE,
      0,
      (buf) => this.onDatagram(buf),
      (err) => this.failAll(err),
    );
    try {
      this.native.bind(0, 0); // port 0: the kernel picks a unique port id
      this.native.setRecvBufferSize(1 << 20);
    } catch (err) {
      this.native.close();
      throw err;
    }
    // Idle sockets must not keep the process alive; a pending request refs it.
    this.native.unref();
  }

  /** Sends a change (or single get) with NLM_F_ACK; resolves with any replies before the ack. */
  async request(type: number, flags: number, body: Buffer[], operation: string): Promise<NlReply[]> {
    const { replies } = await this.send(type, NLM_F_REQUEST | NLM_F_ACK | flags, body, operation);
    return replies;
  }

  /** Dumps a table, restarting when the kernel flags the dump as interrupted (NLM_F_DUMP_INTR). */
  async dump(type: number, body: Buffer[], operation: string): Promise<NlReply[]> {
    for (let attempt = 1; ; attempt++) {
      const { replies, interrupted } = await this.send(type, NLM_F_REQUEST | NLM_F_DUMP, body, operation);
      if (!interrupted) return replies;
      if (attempt >= DUMP_ATTEMPTS) {
        throw new NetlinkError(
          operation,
          'EINTR',
          4,
          `dump interrupted ${DUMP_ATTEMPTS} times by concurrent changes`,
        );
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
    this.failAll(new Error('netlink socket closed'));
  }

  private send(
    type: number,
    flags: number,
    body: Buffer[],
    operation: string,
  ): Promise<{ replies: NlReply[]; interrupted: boolean }> {
    if (this.closed)
      return Promise.reject(new NetlinkError(operation, 'EBADF', 9, 'netlink handle is closed'));
    this.seq = (this.seq + 1) >>> 0 || 1;
    const seq = this.seq;
    const msg = formatMessage(type, flags, seq, body);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(seq);
        reject(
          new NetlinkError(operation, 'ETIMEDOUT', 110, `no reply from the kernel in ${this.timeoutMs} ms`),
        );
      }, this.timeoutMs);
      timer.unref();
      if (this.pending.size === 0) this.native.ref();
      this.pending.set(seq, { operation, replies: [], interrupted: false, resolve, reject, timer });
      this.native.send(0, 0, msg, (err) => {
        if (!err) return;
        const p = this.settle(seq);
        p?.reject(
          new NetlinkError(operation, (err as NodeJS.ErrnoException).code ?? 'EIO', undefined, err.message),
        );
      });
    });
  }

  private settle(seq: number): Pending | undefined {
    const p = this.pending.get(seq);
    if (!p) return undefined;
    clearTimeout(p.timer);
    this.pending.delete(seq);
    if (this.pending.size === 0 && !this.closed) this.native.unref();
    return p;
  }

  private onDatagram(buf: Buffer): void {
    for (const { hdr, payload } of splitMessages(buf)) {
      const p = this.pending.get(hdr.seq);
      if (!p) continue; // a late reply to a request that timed out
      if (hdr.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (hdr.type === NLMSG_ERROR) {
        const errno = payload.length >= 4 ? -payload.readInt32LE(0) : 0;
        this.settle(hdr.seq);
        if (errno === 0) p.resolve({ replies: p.replies, interrupted: p.interrupted });
        else p.reject(NetlinkError.fromErrno(p.operation, errno));
      } else if (hdr.type === NLMSG_DONE) {
        // A dump can end with an error code in DONE's payload.
        const errno = payload.length >= 4 ? -payload.readInt32LE(0) : 0;
        this.settle(hdr.seq);
        if (errno > 0) p.reject(NetlinkError.fromErrno(p.operation, errno));
        else p.resolve({ replies: p.replies, interrupted: p.interrupted });
      } else if (hdr.type === NLMSG_OVERRUN) {
        this.settle(hdr.seq);
        p.reject(new NetlinkError(p.operation, 'ENOBUFS', 105, 'netlink receive buffer overrun'));
      } else if (hdr.type !== NLMSG_NOOP) {
        p.replies.push({ type: hdr.type, flags: hdr.flags, payload });
      }
    }
  }

  private failAll(err: Error): void {
    for (const seq of [...this.pending.keys()]) {
      const p = this.settle(seq);
      p?.reject(
        new NetlinkError(p.operation, (err as NodeJS.ErrnoException).code ?? 'EIO', undefined, err.message),
      );
    }
  }
}
