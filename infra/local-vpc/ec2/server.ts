/**
 * The EC2 Query-API emulator over HTTP, spoken the way @aws-sdk/client-ec2 v3 speaks it: POST
 * form body with `Action` and `Version=2016-11-15`, XML replies in the 2016-11-15 namespace, errors
 * as `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>` with
 * EC2's HTTP status. SigV4 signatures are not checked; the access key id names the caller.
 *
 * Library API:
 *   startEc2Server({ state, port?, host?, faults?, calls? }) -> Promise<{ url, port, faults, calls, close() }>
 *   createEc2Handler({ state, faults, calls }) -> (req, res) => void  (to mount in another server)
 * `faults` (faults.ts) and `calls` (call-log.ts) are the per-test controls.
 *
 * Every request is checked before its action runs, in EC2's order: the action must exist
 * (InvalidAction), the call takes a token from its throttling bucket (RequestLimitExceeded, 503),
 * its parameters must be ones the service model defines for the action, of the right types, with
 * the required ones present (api-model.ts: UnknownParameter, InvalidParameterValue,
 * MissingParameter, 400), and DryRun answers DryRunOperation (412) once the request is valid.
 *
 * HTTP control API on the same server (JSON bodies and replies):
 *   GET    /_localvpc/calls[?entries=1]   call summary {total, byAction, byCaller[, entries]}
 *   DELETE /_localvpc/calls               reset the call log
 *   GET    /_localvpc/faults              current faults
 *   DELETE /_localvpc/faults              clear every fault (the consistency window back to its baseline)
 *   PUT    /_localvpc/faults/latency      {action: "DescribeNetworkInterfaces" | "*", ms, jitterMs?}  (ms: null clears)
 *   PUT    /_localvpc/faults/throttling   {enabled: bool, buckets?: {name: {capacity, refillPerSecond}}, scale?}
 *   POST   /_localvpc/faults/errors       {action | "*", httpStatus?=500, code?, message?, count? | probability?}
 *   PUT    /_localvpc/faults/consistency  {windowMs}
 *   PUT    /_localvpc/faults/attach-delay {ms}   AttachNetworkInterface completes after ms ('attaching' meanwhile)
 *   PUT    /_localvpc/faults/detach-delay {ms}   DetachNetworkInterface completes after ms ('detaching' meanwhile)
 *   GET    /_localvpc/state               the model as JSON (VPCs, subnets, instances, ENIs)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ACTIONS } from './actions.js';
import { validateParams } from './api-model.js';
import { CallLog } from './call-log.js';
import { Ec2Error } from './errors.js';
import { Faults } from './faults.js';
import { QueryParams } from './params.js';
import type { Ec2State } from './state.js';
import { ec2ErrorResponse, ec2Response } from './xml.js';

const MAX_BODY = 1 << 20;
const CONTROL_PREFIX = '/_localvpc/';

export interface Ec2HandlerOptions {
  state: Ec2State;
  faults: Faults;
  calls: CallLog;
}

export interface Ec2ServerOptions {
  state: Ec2State;
  port?: number;
  host?: string;
  faults?: Faults;
  calls?: CallLog;
}

export interface Ec2Server {
  url: string;
  port: number;
  faults: Faults;
  calls: CallLog;
  close(): Promise<void>;
}

class BodyError extends Error {}

/** Instances a call launches or terminates: what EC2's resource token buckets count. */
function resourceCount(action: string, params: QueryParams): number {
  if (action === 'RunInstances') return Number(params.raw.get('MaxCount')) || 0;
  if (action === 'TerminateInstances') return params.list('InstanceId')?.length ?? 0;
  return 0;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new BodyError('request body larger than 1 MiB'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The SigV4 access key id, else the peer address. */
function callerOf(req: IncomingMessage): string {
  const m = /Credential=([^/,\s]+)\//.exec(req.headers.authorization ?? '');
  return m?.[1] ?? req.socket.remoteAddress ?? 'unknown';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createEc2Handler(
  opts: Ec2HandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { state, faults, calls } = opts;
  faults.knownActions ??= new Set(Object.keys(ACTIONS));
  async function handleApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const requestId = state.ids.reqId();
    const caller = callerOf(req);
    let action = '(none)';
    let logged: Record<string, string> | undefined;
    const reply = (status: number, body: string, errorCode?: string) => {
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId });
      res.end(body);
      calls.record({
        time: started,
        action,
        caller,
        httpStatus: status,
        errorCode,
        durationMs: Date.now() - started,
        params: logged,
      });
    };
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      let body: string;
      if (req.method === 'POST') body = await readBody(req);
      else if (req.method === 'GET') body = url.search.slice(1);
      else
        throw new Ec2Error(
          'InvalidHttpRequest',
          `HTTP method ${req.method} is not supported; use POST.`,
          405,
        );
      const params = new QueryParams(body);
      logged = Object.fromEntries([...params.raw].filter(([k]) => k !== 'Action' && k !== 'Version'));
      const name = params.action;
      if (!name) throw new Ec2Error('MissingAction', 'The request must contain the parameter Action');
      action = name;
      const handler = Object.hasOwn(ACTIONS, name) ? ACTIONS[name] : undefined;
      if (!handler)
        throw new Ec2Error('InvalidAction', `The action ${name} is not valid for this web service.`);
      const keys = [...params.raw.keys()];
      faults.checkThrottle(
        name,
        {
          filtered: keys.some((k) => k.startsWith('Filter.')),
          paginated: params.raw.has('MaxResults') || params.raw.has('NextToken'),
        },
        resourceCount(name, params),
      );
      const version = params.raw.get('Version');
      if (version !== undefined && version !== '2016-11-15')
        throw new Ec2Error(
          'NoSuchVersion',
          `The requested version (${version}) of service AmazonEC2 does not exist`,
        );
      validateParams(
        name,
        [...params.raw].filter(([k]) => k !== 'Action' && k !== 'Version'),
      );
      const delay = faults.delayFor(name);
      if (delay > 0) await sleep(delay);
      faults.checkInjectedError(name);
      if (params.bool('DryRun')) {
        throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
      }
      const result = handler({ state, params, hidden: (eni) => faults.hiddenByConsistency(eni.createdAt) });
      reply(200, ec2Response(name, result, requestId));
    } catch (e) {
      if (e instanceof Ec2Error) reply(e.httpStatus, ec2ErrorResponse(e.code, e.message, requestId), e.code);
      else if (e instanceof BodyError)
        reply(413, ec2ErrorResponse('RequestEntityTooLarge', e.message, requestId), 'RequestEntityTooLarge');
      else {
        const msg = e instanceof Error ? e.message : String(e);
        reply(
          500,
          ec2ErrorResponse('InternalError', `The local VPC failed: ${msg}`, requestId),
          'InternalError',
        );
      }
    }
  }

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith(CONTROL_PREFIX)) void handleControl(opts, req, res);
    else void handleApi(req, res);
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body, null, 2)}\n`);
}

async function handleControl(
  opts: Ec2HandlerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const route = `${req.method} ${url.pathname.slice(CONTROL_PREFIX.length).replace(/\/$/, '')}`;
  const faultsJson = () => ({
    ...opts.faults.snapshot(),
    attachDelayMs: opts.state.attachDelay,
    detachDelayMs: opts.state.detachDelay,
  });
  try {
    const text = req.method === 'GET' || req.method === 'DELETE' ? '' : await readBody(req);
    let body: Record<string, unknown> = {};
    if (text.trim()) {
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        throw new Error('the request body is not valid JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body))
        throw new Error('the request body must be a JSON object');
    }
    switch (route) {
      case 'GET calls': {
        const summary = opts.calls.summary();
        return json(
          res,
          200,
          url.searchParams.get('entries') ? { ...summary, entries: opts.calls.entries() } : summary,
        );
      }
      case 'DELETE calls':
        opts.calls.reset();
        return json(res, 200, { ok: true });
      case 'GET faults':
        return json(res, 200, faultsJson());
      case 'DELETE faults':
        opts.faults.reset();
        return json(res, 200, { ok: true });
      case 'PUT faults/attach-delay':
        opts.state.setAttachDelay(requireNumber(body, 'ms'));
        return json(res, 200, faultsJson());
      case 'PUT faults/detach-delay':
        opts.state.setDetachDelay(requireNumber(body, 'ms'));
        return json(res, 200, faultsJson());
      case 'PUT faults/latency': {
        const action = requireString(body, 'action');
        const ms = body.ms;
        if (ms === null) opts.faults.setLatency(action, undefined);
        else
          opts.faults.setLatency(action, {
            ms: requireNumber(body, 'ms'),
            jitterMs: optionalNumber(body, 'jitterMs'),
          });
        return json(res, 200, faultsJson());
      }
      case 'PUT faults/throttling': {
        if (typeof body.enabled !== 'boolean') throw new Error("'enabled' must be true or false");
        opts.faults.setThrottling(
          body.enabled,
          body.buckets as Record<string, { capacity: number; refillPerSecond: number }>,
          optionalNumber(body, 'scale'),
        );
        return json(res, 200, faultsJson());
      }
      case 'POST faults/errors':
        opts.faults.injectError({
          action: requireString(body, 'action'),
          httpStatus: optionalNumber(body, 'httpStatus'),
          code: optionalString(body, 'code'),
          message: optionalString(body, 'message'),
          count: optionalNumber(body, 'count'),
          probability: optionalNumber(body, 'probability'),
        });
        return json(res, 200, faultsJson());
      case 'PUT faults/consistency':
        opts.faults.setConsistencyWindow(requireNumber(body, 'windowMs'));
        return json(res, 200, faultsJson());
      case 'GET state':
        return json(res, 200, stateToJson(opts.state));
      default:
        return json(res, 404, {
          error: `no control endpoint '${req.method} ${url.pathname}'; see infra/local-vpc/ec2/server.ts`,
        });
    }
  } catch (e) {
    json(res, 400, { error: e instanceof Error ? e.message : String(e) });
  }
}

function requireString(b: Record<string, unknown>, k: string): string {
  if (typeof b[k] !== 'string' || b[k] === '') throw new Error(`'${k}' must be a non-empty string`);
  return b[k] as string;
}
function optionalString(b: Record<string, unknown>, k: string): string | undefined {
  return b[k] === undefined ? undefined : requireString(b, k);
}
function requireNumber(b: Record<string, unknown>, k: string): number {
  if (typeof b[k] !== 'number' || !Number.isFinite(b[k])) throw new Error(`'${k}' must be a number`);
  return b[k] as number;
}
function optionalNumber(b: Record<string, unknown>, k: string): number | undefined {
  return b[k] === undefined ? undefined : requireNumber(b, k);
}

/** The model as plain JSON, for the control API and the CLI's status. */
export function stateToJson(state: Ec2State): unknown {
  const tags = (m: ReadonlyMap<string, string>) => Object.fromEntries(m);
  return {
    region: state.region,
    accountId: state.accountId,
    vpcs: state.vpcs().map((v) => ({ id: v.id, cidrBlocks: v.cidrBlocks, tags: tags(v.tags) })),
    subnets: state.subnets().map((s) => ({
      id: s.id,
      vpcId: s.vpcId,
      cidrBlock: s.cidrBlock,
      availabilityZone: s.availabilityZone,
      availableIpAddressCount: s.pool.available,
      tags: tags(s.tags),
    })),
    instances: state.instances().map((i) => ({
      id: i.id,
      instanceType: i.instanceType,
      state: i.state,
      subnetId: i.subnetId,
      privateIpAddress: i.privateIpAddress,
      primaryEniId: i.primaryEniId,
      tags: tags(i.tags),
    })),
    networkInterfaces: state.enis().map((e) => ({
      id: e.id,
      subnetId: e.subnetId,
      mac: e.mac,
      status: e.status,
      description: e.description,
      attachment: e.attachment,
      privateIps: e.privateIps,
      prefixes: e.prefixes,
      tags: tags(e.tags),
    })),
  };
}

export async function startEc2Server(opts: Ec2ServerOptions): Promise<Ec2Server> {
  const faults = opts.faults ?? new Faults();
  const calls = opts.calls ?? new CallLog();
  const server = createServer(createEc2Handler({ state: opts.state, faults, calls }));
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    faults,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
