/**
 * The project's native addon (native/sys, dist/sys.node): the few system calls Node cannot make.
 * Loaded on first use, so importing lib/net costs nothing; every function is synchronous except
 * recvRequest. Errors carry `.code` (errno name) and `.errno`, like Node's own system errors.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface PeerCred {
  /** 0 when the caller lives in a PID namespace this process cannot see (a container). */
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedRequest {
  /** Bytes read up to and including the first newline (or all until end of stream / the limit). */
  data: Buffer;
  /** Descriptors sent with the request (SCM_RIGHTS); the caller owns and must close them. */
  fds: number[];
  /** The client closed its side before a newline arrived. */
  eof: boolean;
}

export interface SysAddon {
  setns(fd: number, nstype: number): void;
  /** CLONE_NEW* of the namespace `fd` refers to; throws ENOTTY when it is no namespace. */
  nsType(fd: number): number;
  /** A new fd for the network namespace the socket `fd` belongs to (SIOCGSKNS). */
  socketNetns(fd: number): number;
  close(fd: number): void;
  /** A NETLINK_ROUTE socket in the calling thread's network namespace. */
  nlOpen(): number;
  /** Returns `fd` once it is proven a raw NETLINK_ROUTE socket; throws EPROTOTYPE / ENOTSOCK. */
  nlAdopt(fd: number): number;
  nlSend(fd: number, msg: Buffer): void;
  /** The next datagram from the kernel; throws ETIMEDOUT after `timeoutMs`. */
  nlRecv(fd: number, timeoutMs: number): Buffer;
  peerCred(fd: number): PeerCred;
  recvRequest(
    fd: number,
    maxBytes: number,
    maxFds: number,
    cb: (err: NodeJS.ErrnoException | null, req?: ReceivedRequest) => void,
  ): { cancel(): void };
}

let addon: SysAddon | undefined;

/**
 * Where the addon may be: next to a bundle (build.mjs puts sys.node in dist/), one directory up from a
 * chunk of a split bundle (dist/ipamd-chunks/), or node-gyp's output when running from sources.
 */
function candidates(): string[] {
  const override = process.env['VPCCNI_SYS_ADDON'];
  if (override) return [override];
  return ['./sys.node', '../sys.node', '../../native/sys/build/Release/sys.node', '../../dist/sys.node'].map(
    (r) => fileURLToPath(new URL(r, import.meta.url)),
  );
}

export function sys(): SysAddon {
  if (addon) return addon;
  const req = createRequire(import.meta.url);
  const failures: string[] = [];
  for (const file of candidates()) {
    try {
      const mod = req(file) as Partial<SysAddon>;
      if (typeof mod.nlSend !== 'function') throw new Error('does not export nlSend()');
      addon = mod as SysAddon;
      return addon;
    } catch (err) {
      failures.push(`${file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(
    `native addon sys.node not found or not loadable; run "npm run build" (builds native/sys). Tried:\n  ${failures.join('\n  ')}`,
  );
}
