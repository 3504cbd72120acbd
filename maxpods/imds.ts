/**
 * The instance type from the EC2 instance metadata service, IMDSv2 only: PUT a session token, then GET
 * /latest/meta-data/instance-type with it. Runs at node boot, when IMDS can be briefly unreachable, so
 * connection failures and 5xx replies are retried a few times; 4xx replies are answers and are not.
 */
import type { IncomingMessage } from 'node:http';
import { CalculatorError, UsageError } from './errors.js';

const DEFAULT_IPV4 = 'http://169.254.169.254';
const DEFAULT_IPV6 = 'http://[fd00:ec2::254]';
const TOKEN_TTL_SECONDS = '60';

export interface ImdsOptions {
  /** `--imds-host host[:port]`, as the EKS AMI tool takes it. */
  imdsHost?: string;
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
}

/** `--imds-host`, else the SDK's AWS_EC2_METADATA_SERVICE_ENDPOINT(_MODE), else 169.254.169.254. */
export function imdsEndpoint(opts: Pick<ImdsOptions, 'imdsHost' | 'env'>): string {
  let endpoint: string;
  let from: string;
  if (opts.imdsHost !== undefined) {
    endpoint = `http://${opts.imdsHost}`;
    from = '--imds-host';
  } else if (opts.env.AWS_EC2_METADATA_SERVICE_ENDPOINT) {
    endpoint = opts.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    from = 'AWS_EC2_METADATA_SERVICE_ENDPOINT';
  } else {
    const mode = (opts.env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE ?? 'IPv4').toLowerCase();
    if (mode !== 'ipv4' && mode !== 'ipv6') {
      throw new UsageError(
        `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=${opts.env.AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE} is not IPv4 or IPv6`,
      );
    }
    return mode === 'ipv6' ? DEFAULT_IPV6 : DEFAULT_IPV4;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`${from} ${JSON.stringify(endpoint)} is not a URL or host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${from} ${JSON.stringify(endpoint)} must use http or https`);
  }
  return url.origin;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Reply {
  status: number;
  body: string;
}

/** One HTTP exchange with node:http (fetch would refuse "bad ports" and load undici at every boot). */
async function exchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<Reply> {
  // Loaded here, not at the top: node:https pulls in TLS, which every other run would pay for at start.
  const { request: send } = url.startsWith('https:') ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, timeout: timeoutMs }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        // IMDS answers are short; a long one is not IMDS.
        if (body.length < 4096) body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no reply within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end();
  });
}

async function request(
  url: string,
  method: string,
  headers: Record<string, string>,
  what: string,
  opts: Required<Pick<ImdsOptions, 'timeoutMs' | 'attempts' | 'retryDelayMs'>>,
): Promise<string> {
  let last = '';
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    if (attempt > 1) await sleep(opts.retryDelayMs * (attempt - 1));
    let reply: Reply;
    try {
      reply = await exchange(url, method, headers, opts.timeoutMs);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      last = e.code === 'ETIMEDOUT' ? e.message : (e.code ?? e.message);
      continue;
    }
    if (reply.status >= 200 && reply.status < 300) return reply.body;
    last = `HTTP ${reply.status}`;
    if (reply.status < 500) break;
  }
  throw new CalculatorError(`IMDS ${what} failed at ${url}: ${last}`);
}

const INSTANCE_TYPE = /^[a-z0-9][a-z0-9-]*\.[a-z0-9-]+$/;

export async function instanceTypeFromImds(opts: ImdsOptions): Promise<string> {
  if ((opts.env.AWS_EC2_METADATA_DISABLED ?? '').toLowerCase() === 'true') {
    throw new UsageError('--instance-type-from-imds: IMDS is disabled by AWS_EC2_METADATA_DISABLED=true');
  }
  const base = imdsEndpoint(opts);
  const r = {
    timeoutMs: opts.timeoutMs ?? 2000,
    attempts: opts.attempts ?? 3,
    retryDelayMs: opts.retryDelayMs ?? 250,
  };
  const token = await request(
    `${base}/latest/api/token`,
    'PUT',
    { 'X-aws-ec2-metadata-token-ttl-seconds': TOKEN_TTL_SECONDS },
    'token request (PUT /latest/api/token)',
    r,
  );
  if (token.trim() === '') throw new CalculatorError(`IMDS at ${base} returned an empty session token`);
  const type = (
    await request(
      `${base}/latest/meta-data/instance-type`,
      'GET',
      { 'X-aws-ec2-metadata-token': token.trim() },
      'instance-type request',
      r,
    )
  ).trim();
  if (!INSTANCE_TYPE.test(type)) {
    throw new CalculatorError(
      `IMDS at ${base} returned ${JSON.stringify(type)}, which is not an instance type`,
    );
  }
  return type;
}
