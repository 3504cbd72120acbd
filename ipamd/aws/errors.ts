/**
 * EC2 failures mapped to what ipamd (and the operator) should do about them. Every error the wrapper
 * throws is an Ec2Error with a kind the pool logic branches on and a message that says what to fix.
 */

export type Ec2ErrorKind =
  | 'throttled' // RequestLimitExceeded: retried with backoff
  | 'server' // 5xx / InternalError / Unavailable: retried
  | 'network' // connection refused/reset/timeout: retried
  | 'subnet_full' // InsufficientFreeAddressesInSubnet
  | 'no_cidr_block' // InsufficientCidrBlocks: no free /28 for a prefix (fragmented subnet)
  | 'eni_limit' // AttachmentLimitExceeded / NetworkInterfaceLimitExceeded
  | 'address_limit' // PrivateIpAddressLimitExceeded
  | 'not_found' // the ENI / attachment / subnet does not exist (any more)
  | 'not_yet_visible' // NotFound for an ENI this daemon just created: EC2's eventual consistency, retried
  | 'unauthorized' // the node's IAM role lacks a permission
  | 'invalid' // any other 4xx: a bug or a bad configuration
  | 'other';

export class Ec2Error extends Error {
  constructor(
    readonly kind: Ec2ErrorKind,
    readonly api: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'Ec2Error';
  }

  get retryable(): boolean {
    return (
      this.kind === 'throttled' ||
      this.kind === 'server' ||
      this.kind === 'network' ||
      this.kind === 'not_yet_visible'
    );
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

interface SdkLikeError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** What the caller was doing, so messages can name the subnet or ENI. */
export interface CallContext {
  subnetId?: string;
  eniId?: string;
  /**
   * The ENI was created moments ago: EC2 documents that calls naming a just-created resource may
   * answer InvalidXxx.NotFound until its id has propagated ("Eventual consistency in the Amazon EC2
   * API"), so NotFound is retried with backoff rather than believed.
   */
  justCreated?: boolean;
}

export function classifyEc2Error(api: string, err: unknown, ctx: CallContext = {}): Ec2Error {
  if (err instanceof Ec2Error) return err;
  const e = (err ?? {}) as SdkLikeError;
  const code = e.Code ?? e.name ?? e.code ?? 'Unknown';
  const status = e.$metadata?.httpStatusCode;
  const detail = e.message ?? String(err);
  const subnet = ctx.subnetId ?? 'the subnet';
  const eni = ctx.eniId ?? 'the ENI';
  const make = (kind: Ec2ErrorKind, message: string) => new Ec2Error(kind, api, code, message);

  if (code === 'RequestLimitExceeded' || code === 'Throttling' || code === 'ThrottlingException') {
    return make('throttled', `EC2 throttled ${api} (${code}), retrying`);
  }
  // AssignPrivateIpAddresses on a full subnet answers InvalidParameterValue rather than a code of its own.
  const fullOnAssign = code === 'InvalidParameterValue' && /sufficient free ipv4 addresses/i.test(detail);
  if (code === 'InsufficientFreeAddressesInSubnet' || fullOnAssign) {
    return make('subnet_full', `subnet ${subnet} has no free addresses`);
  }
  if (code === 'InsufficientCidrBlocks') {
    return make(
      'no_cidr_block',
      `subnet ${subnet} has no free contiguous /28 block for a prefix (fragmented or full)`,
    );
  }
  if (code === 'AttachmentLimitExceeded' || code === 'NetworkInterfaceLimitExceeded') {
    return make('eni_limit', `the instance cannot take another ENI (${code}): ${detail}`);
  }
  if (code === 'PrivateIpAddressLimitExceeded') {
    return make('address_limit', `${eni} cannot take more addresses (${code}): ${detail}`);
  }
  if (code.endsWith('.NotFound')) {
    if (ctx.justCreated) {
      return make(
        'not_yet_visible',
        `${api}: ${eni} is not visible yet (${code}, eventual consistency), retrying`,
      );
    }
    return make('not_found', `${api}: ${code}: ${detail}`);
  }
  if (code === 'UnauthorizedOperation' || code === 'AccessDenied' || code === 'AuthFailure') {
    return make(
      'unauthorized',
      `not permitted to call ec2:${api} (${code}); grant it to the node's IAM role (see infra/iam)`,
    );
  }
  if (NETWORK_CODES.has(code) || code === 'TimeoutError' || code === 'RequestTimeout') {
    return make('network', `cannot reach the EC2 endpoint for ${api} (${code}), retrying`);
  }
  if (
    (status !== undefined && status >= 500) ||
    code === 'InternalError' ||
    code === 'ServiceUnavailable' ||
    code === 'Unavailable' ||
    code === 'InternalFailure'
  ) {
    return make('server', `EC2 server error on ${api} (${status ?? code}), retrying`);
  }
  if (status !== undefined && status >= 400) {
    return make('invalid', `EC2 rejected ${api}: ${code}: ${detail}`);
  }
  return make('other', `${api} failed: ${code}: ${detail}`);
}
