// Errors from netlink and namespace operations: "<operation>: <reason> (<ERRNO>)" with a `.code`
// so callers can treat EEXIST / ENOENT / ESRCH / ENODEV as idempotent outcomes.
import { getSystemErrorMap } from 'node:util';

/** strerror(3) wording for the errors rtnetlink commonly returns; others fall back to libuv's text. */
const STRERROR: Record<string, string> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  ESRCH: 'No such process',
  EINTR: 'Interrupted system call',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EBUSY: 'Device or resource busy',
  EEXIST: 'File exists',
  ENODEV: 'No such device',
  EINVAL: 'Invalid argument',
  ENOSPC: 'No space left on device',
  ERANGE: 'Numerical result out of range',
  EMSGSIZE: 'Message too long',
  EPROTONOSUPPORT: 'Protocol not supported',
  EOPNOTSUPP: 'Operation not supported',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENETDOWN: 'Network is down',
  ENETUNREACH: 'Network is unreachable',
  ENOBUFS: 'No buffer space available',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
};

let errnoMap: Map<number, [string, string]> | undefined;

/** Errno number (positive) -> symbolic name, e.g. 17 -> "EEXIST". */
export function errnoName(errno: number): string {
  errnoMap ??= getSystemErrorMap();
  return errnoMap.get(-Math.abs(errno))?.[0] ?? `E${errno}`;
}

export function errnoText(code: string): string {
  if (STRERROR[code]) return STRERROR[code];
  errnoMap ??= getSystemErrorMap();
  for (const [name, text] of errnoMap.values()) if (name === code) return text;
  return 'Unknown error';
}

/** An rtnetlink (or namespace) operation that failed; `code` is the errno name. */
export class NetlinkError extends Error {
  readonly code: string;
  readonly errno: number | undefined;
  readonly operation: string;

  constructor(operation: string, code: string, errno?: number, reason?: string, options?: ErrorOptions) {
    super(`${operation}: ${reason ?? errnoText(code)} (${code})`, options);
    this.name = 'NetlinkError';
    this.operation = operation;
    this.code = code;
    this.errno = errno;
  }

  /** `detail`: the kernel's extended-ack text, shown after the errno's own wording. */
  static fromErrno(operation: string, errno: number, detail?: string): NetlinkError {
    const code = errnoName(errno);
    return new NetlinkError(
      operation,
      code,
      Math.abs(errno),
      detail ? `${errnoText(code)}: ${detail}` : undefined,
    );
  }
}

/** True when `err` carries one of the given errno codes (EEXIST on add, ENOENT/ESRCH on delete, ...). */
export function hasCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}
