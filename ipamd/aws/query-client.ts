/**
 * ipamd's EC2 transport: one signed HTTPS POST per call in EC2's Query protocol, built from the SDK's own
 * parts (SigV4 signer, XML parser, the default credential chain) without @aws-sdk/client-ec2, whose model
 * would triple the daemon's memory. No retries here: Ec2Api owns retries, rate limits and metrics.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { parseXML } from '@aws-sdk/xml-builder';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import {
  type Ec2Action,
  type Ec2Input,
  type Ec2Output,
  Ec2ReplyError,
  type Ec2Transport,
  errorOf,
  formBody,
  fromReply,
  toQueryParams,
} from './ec2-wire.js';

/** An EC2 error reply or a failed request, shaped like the SDK's errors so classifyEc2Error reads either. */
export class Ec2CallError extends Error {
  readonly $metadata: { httpStatusCode?: number; requestId?: string };
  constructor(
    override readonly name: string,
    message: string,
    status?: number,
    requestId?: string,
  ) {
    super(message);
    this.$metadata = {
      ...(status === undefined ? {} : { httpStatusCode: status }),
      ...(requestId ? { requestId } : {}),
    };
  }
}

export interface Ec2QueryOptions {
  region: string;
  /** AWS_EC2_ENDPOINT; by default EC2's regional endpoint. */
  endpoint?: string | null;
  credentials?: AwsCredentialIdentityProvider;
  /** Bound on one request (connect to last byte). */
  timeoutMs?: number;
}

/** EC2 replies ipamd reads are a few KB; a page of 1000 ENIs stays far below this. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** EC2's regional endpoint, as the SDK resolves it for the aws, aws-cn and aws-us-gov partitions. */
export function regionalEndpoint(region: string, opts: { fips?: boolean } = {}): string {
  const domain = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://ec2${opts.fips ? '-fips' : ''}.${region}.${domain}`;
}

export class Ec2QueryClient implements Ec2Transport {
  private readonly url: URL;
  private readonly signer: SignatureV4;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly timeoutMs: number;

  constructor(opts: Ec2QueryOptions) {
    this.url = new URL(opts.endpoint ?? regionalEndpoint(opts.region));
    if (this.url.protocol !== 'https:' && this.url.protocol !== 'http:') {
      throw new Error(`EC2 endpoint ${this.url.href} is not an http(s) URL`);
    }
    this.signer = new SignatureV4({
      service: 'ec2',
      region: opts.region,
      sha256: Hash.bind(null, 'sha256'),
      credentials: opts.credentials ?? defaultProvider(),
    });
    // Keep-alive: a node's calls arrive in bursts; one TLS handshake per burst, not per call.
    const agentOpts = { keepAlive: true, maxSockets: 8 };
    this.agent = this.url.protocol === 'https:' ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async send<A extends Ec2Action>(action: A, input: Ec2Input<A>): Promise<Ec2Output<A>> {
    const body = formBody(action, toQueryParams(input));
    const path = this.url.pathname || '/';
    const signed = await this.signer.sign({
      method: 'POST',
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      ...(this.url.port ? { port: Number(this.url.port) } : {}),
      path,
      query: {},
      headers: {
        host: this.url.host,
        'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
      },
      body,
    });
    const { status, text } = await this.post(path, signed.headers, body);
    let doc: Record<string, unknown>;
    try {
      doc = parseXML(text) as Record<string, unknown>;
    } catch (err) {
      if (status >= 300)
        throw new Ec2CallError(status >= 500 ? 'InternalError' : 'UnknownError', `HTTP ${status}`, status);
      throw new Ec2ReplyError(`EC2 ${action} reply is not XML: ${(err as Error).message}`);
    }
    if (status >= 300) {
      const e = errorOf(doc);
      if (!e)
        throw new Ec2CallError(status >= 500 ? 'InternalError' : 'UnknownError', `HTTP ${status}`, status);
      throw new Ec2CallError(e.code, e.message, status, e.requestId);
    }
    return fromReply(action, doc);
  }

  private post(
    path: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<{ status: number; text: string }> {
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          method: 'POST',
          hostname: this.url.hostname,
          port: this.url.port || undefined,
          path,
          headers,
          agent: this.agent,
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_REPLY_BYTES) {
              req.destroy(new Ec2ReplyError(`EC2 reply larger than ${MAX_REPLY_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () =>
        req.destroy(new Ec2CallError('TimeoutError', `no reply within ${this.timeoutMs} ms`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err instanceof Ec2CallError || err instanceof Ec2ReplyError
            ? err
            : new Ec2CallError(err.code ?? 'NetworkError', err.message),
        ),
      );
      req.end(body);
    });
  }

  /** Closes idle keep-alive sockets (shutdown). */
  destroy(): void {
    this.agent.destroy();
  }
}
