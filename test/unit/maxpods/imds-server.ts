import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImds {
  endpoint: string;
  /** Every request seen: method, path and the IMDS headers. */
  requests: { method: string; url: string; ttl?: string; token?: string }[];
  close(): Promise<void>;
}

export interface FakeImdsBehaviour {
  instanceType?: string;
  /** Fail the first n token requests with 503 (IMDS still starting). */
  failTokenTimes?: number;
  /** Answer token requests with this status instead of a token (e.g. 403: IMDS disabled). */
  tokenStatus?: number;
}

/** A real IMDSv2 HTTP server on 127.0.0.1: tokens via PUT, metadata only with a valid token. */
export async function startFakeImds(b: FakeImdsBehaviour = {}): Promise<FakeImds> {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const requests: FakeImds['requests'] = [];
  let tokenFailures = b.failTokenTimes ?? 0;
  const header = (req: IncomingMessage, name: string) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const server: Server = createServer((req, res) => {
    const seen = {
      method: req.method ?? '',
      url: req.url ?? '',
      ttl: header(req, 'x-aws-ec2-metadata-token-ttl-seconds'),
      token: header(req, 'x-aws-ec2-metadata-token'),
    };
    requests.push(seen);
    if (req.url === '/latest/api/token') {
      if (req.method !== 'PUT') return void res.writeHead(405).end();
      if (b.tokenStatus) return void res.writeHead(b.tokenStatus).end();
      if (tokenFailures > 0) {
        tokenFailures--;
        return void res.writeHead(503).end();
      }
      if (!seen.ttl) return void res.writeHead(400).end();
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
    }
    if (seen.token !== token) return void res.writeHead(401).end();
    if (req.url === '/latest/meta-data/instance-type' && req.method === 'GET') {
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(b.instanceType ?? 'm5.large');
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
