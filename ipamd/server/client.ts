/**
 * A minimal ipamd socket client: one request line out, one response line back. Used by the probe,
 * tests and benchmarks; it depends on nothing but node:net and the protocol module so it loads fast.
 */
import { connect } from 'node:net';
import { type ErrorBody, PROTOCOL_VERSION, type Request, type Response } from '../../lib/protocol/ipamd.js';

/** The daemon answered with ok:false. */
export class IpamdError extends Error {
  constructor(readonly body: ErrorBody) {
    super(`ipamd: ${body.code}: ${body.message}`);
    this.name = 'IpamdError';
  }
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Sends one request and returns the result, or throws IpamdError / a transport error naming the socket. */
export function ipamdRequest<T>(path: string, req: Request, timeoutMs = 5_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const sock = connect(path);
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.setTimeout(timeoutMs, () =>
      fail(new Error(`ipamd at ${path} did not answer within ${timeoutMs} ms`)),
    );
    sock.on('error', (err: NodeJS.ErrnoException) =>
      fail(new Error(`cannot reach ipamd at ${path}: ${err.code ?? err.message}`)),
    );
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) fail(new Error(`ipamd at ${path} sent an oversized response`));
      else chunks.push(chunk);
    });
    sock.on('end', () => {
      sock.destroy();
      const text = Buffer.concat(chunks).toString('utf8');
      const line = text.split('\n', 1)[0] ?? '';
      let res: Response<T>;
      try {
        res = JSON.parse(line) as Response<T>;
      } catch {
        reject(
          new Error(`ipamd at ${path} sent a malformed response: ${JSON.stringify(line.slice(0, 200))}`),
        );
        return;
      }
      if (res.v !== PROTOCOL_VERSION) {
        reject(new Error(`ipamd at ${path} speaks protocol version ${res.v}, expected ${PROTOCOL_VERSION}`));
      } else if (res.ok) resolve(res.result);
      else reject(new IpamdError(res.error));
    });
  });
}
