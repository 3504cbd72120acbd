// A NETLINK_ROUTE socket with request/ack and dump handling over the native addon (lib/net/sys.ts).
//
// Each request runs to completion synchronously: the kernel handles a request inside sendmsg and
// queues its replies before returning, and produces the rest of a dump as the reader drains it, so
// send + read-until-done never waits on anything but the kernel. No other JavaScript runs in between,
// so calls sharing one socket (ipamd serves many pods at once) can never interleave: no EBUSY from a
// second dump on a socket mid-dump, no reply read by the wrong caller, no handle closed under another
// call's feet. The `netlink` package's binding, used before, polls the socket through libuv (async,
// so interleaving), and cannot adopt a socket another process created, which is how ipamd acts in a
// pod's namespace without CAP_SYS_ADMIN (the CNI shim opens it there and passes it over SCM_RIGHTS).

import { NetlinkError } from './errors.js';
import {
  formatMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
  parseAttrs,
  readStr,
  splitMessages,
} from './nlmsg.js';
import { sys } from './sys.js';

export interface NlReply {
  type: number;
  flags: number;
  payload: Buffer;
}

/** How often an interrupted dump (the table changed while being read) is restarted. */
const DUMP_ATTEMPTS = 5;
/** The kernel answers at once; this only bounds a socket that is not the kernel's to answer. */
const DEFAULT_TIMEOUT_MS = 2_000;
/** NLM_F_ACK_TLVS on an error: extended-ack attributes follow the echoed header. */
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

export class NlSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private fd: number | undefined;

  /**
   * Opens a socket in the calling thread's current network namespace (see inNetns), or adopts `fd`,
   * a socket another process made (checked to be NETLINK_ROUTE; this object then owns it).
   */
  constructor(
    readonly timeoutMs = DEFAULT_TIMEOUT_MS,
    fd?: number,
  ) {
    this.fd = fd === undefined ? sys().nlOpen() : sys().nlAdopt(fd);
  }

  /** The descriptor, for ioctls on it (e.g. the namespace it lives in); undefined once closed. */
  get descriptor(): number | undefined {
    return this.fd;
  }

  /** Sends a change (or single get) with NLM_F_ACK; resolves with any replies before the ack. */
  async request(type: number, flags: number, body: Buffer[], operation: string): Promise<NlReply[]> {
    return this.transact(type, NLM_F_REQUEST | NLM_F_ACK | flags, body, operation).replies;
  }

  /** Dumps a table, restarting when the kernel flags the dump as interrupted (NLM_F_DUMP_INTR). */
  async dump(type: number, body: Buffer[], operation: string): Promise<NlReply[]> {
    for (let attempt = 1; ; attempt++) {
      const { replies, interrupted } = this.transact(type, NLM_F_REQUEST | NLM_F_DUMP, body, operation);
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
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    sys().close(fd);
  }

  private transact(
    type: number,
    flags: number,
    body: Buffer[],
    operation: string,
  ): { replies: NlReply[]; interrupted: boolean } {
    const fd = this.fd;
    if (fd === undefined) throw new NetlinkError(operation, 'EBADF', 9, 'netlink handle is closed');
    this.seq = (this.seq + 1) >>> 0 || 1;
    const seq = this.seq;
    const native = sys();
    try {
      native.nlSend(fd, formatMessage(type, flags, seq, body));
      const replies: NlReply[] = [];
      let interrupted = false;
      for (;;) {
        for (const { hdr, payload } of splitMessages(native.nlRecv(fd, this.timeoutMs))) {
          if (hdr.seq !== seq) continue; // a late answer to an earlier request that failed midway
          if (hdr.flags & NLM_F_DUMP_INTR) interrupted = true;
          if (hdr.type === NLMSG_ERROR || hdr.type === NLMSG_DONE) {
            // An ack is an error message with errno 0; a dump can end with an errno in DONE.
            const errno = payload.length >= 4 ? -payload.readInt32LE(0) : 0;
            if (errno > 0) throw NetlinkError.fromErrno(operation, errno, extAckMessage(hdr.flags, payload));
            return { replies, interrupted };
          }
          if (hdr.type === NLMSG_OVERRUN) {
            throw new NetlinkError(operation, 'ENOBUFS', 105, 'netlink receive buffer overrun');
          }
          if (hdr.type !== NLMSG_NOOP) replies.push({ type: hdr.type, flags: hdr.flags, payload });
        }
      }
    } catch (err) {
      if (err instanceof NetlinkError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new NetlinkError(operation, e.code ?? 'EIO', e.errno, undefined, { cause: err });
    }
  }
}

/** The kernel's own explanation of an error (extended ack), when it gave one. */
function extAckMessage(flags: number, payload: Buffer): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS) || payload.length < 4 + NLMSG_HDRLEN) return undefined;
  // errno, then the request's header (NETLINK_CAP_ACK: without its payload), then attributes.
  return readStr(parseAttrs(payload, 4 + NLMSG_HDRLEN).get(NLMSGERR_ATTR_MSG)) || undefined;
}
