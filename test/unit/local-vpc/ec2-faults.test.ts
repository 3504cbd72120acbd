// Fault injection and the call log of the EC2 emulator, driven through the HTTP control API and the
// library API, observed through the real SDK.
import {
  CreateNetworkInterfaceCommand,
  DeleteNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSubnetsCommand,
  DetachNetworkInterfaceCommand,
  type EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  requestBucketOf,
  resourceBucketOf,
  TokenBuckets,
  tokenBucketBoundSeconds,
} from '../../../infra/local-vpc/ec2/throttle.js';
import { type Ec2Fixture, errorOf, startFixture } from './helpers.js';

let f: Ec2Fixture;
let ec2: EC2Client;
/** When set, the fault model's clock stands still at this time. */
let frozenAt: number | undefined;

beforeAll(async () => {
  f = await startFixture({ clock: () => frozenAt ?? Date.now() });
  ec2 = f.client();
});
afterAll(async () => {
  await f.close();
});
afterEach(async () => {
  frozenAt = undefined;
  await control('DELETE', 'faults');
  await control('DELETE', 'calls');
});

async function control(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`${f.server.url}/_localvpc/${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}

const describeEnis = () => ec2.send(new DescribeNetworkInterfacesCommand({}));

// Figures and rules from "Request throttling for the Amazon EC2 API" (EC2 Developer Guide,
// ec2-api-throttling): per-API buckets, the unfiltered-and-unpaginated subset, uncategorized actions,
// resource buckets for RunInstances/TerminateInstances.
describe('throttling', () => {
  it('is off by default', async () => {
    for (let k = 0; k < 55; k++) await describeEnis();
  });

  it('drains a 50-token DescribeNetworkInterfaces bucket and answers 503 RequestLimitExceeded, other buckets unaffected', async () => {
    // Capacity as EC2's; a near-zero refill keeps the count exact however slow this machine is.
    const r = await control('PUT', 'faults/throttling', {
      enabled: true,
      buckets: { 'DescribeNetworkInterfaces/unfiltered': { capacity: 50, refillPerSecond: 0.001 } },
    });
    expect(r.status).toBe(200);
    const results = await Promise.allSettled(Array.from({ length: 53 }, () => describeEnis()));
    const failed = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[];
    expect(failed).toHaveLength(3);
    expect(failed[0]!.reason).toMatchObject({
      name: 'RequestLimitExceeded',
      $metadata: { httpStatusCode: 503 },
    });
    await ec2.send(new DescribeSubnetsCommand({})); // every API has its own bucket
    // A filtered or paginated call draws from the standard (larger) bucket, not the unfiltered one.
    await ec2.send(
      new DescribeNetworkInterfacesCommand({ Filters: [{ Name: 'subnet-id', Values: [f.subnetId] }] }),
    );
    await ec2.send(new DescribeNetworkInterfacesCommand({ MaxResults: 5 }));
    const calls = await control('GET', 'calls');
    const dni = (calls.json.byAction as Record<string, { calls: number; throttled: number }>)
      .DescribeNetworkInterfaces!;
    expect(dni).toMatchObject({ calls: 55, throttled: 3 });
  });

  it('refills at the configured rate', async () => {
    frozenAt = Date.now();
    f.server.faults.setThrottling(true, {
      'DescribeNetworkInterfaces/unfiltered': { capacity: 2, refillPerSecond: 10 },
    });
    await describeEnis();
    await describeEnis();
    expect((await errorOf(describeEnis)).name).toBe('RequestLimitExceeded');
    frozenAt += 90; // not yet a whole token
    expect((await errorOf(describeEnis)).name).toBe('RequestLimitExceeded');
    frozenAt += 20;
    await describeEnis();
    expect((await errorOf(describeEnis)).name).toBe('RequestLimitExceeded');
  });

  it('is an error the SDK retries to success', async () => {
    f.server.faults.injectError({
      action: 'DescribeNetworkInterfaces',
      httpStatus: 503,
      code: 'RequestLimitExceeded',
      count: 2,
    });
    const retrying = f.client({ maxAttempts: 5 });
    const r = await retrying.send(new DescribeNetworkInterfacesCommand({}));
    expect(r.NetworkInterfaces).toBeDefined();
    expect(f.server.calls.summary().byAction.DescribeNetworkInterfaces).toEqual({
      calls: 3,
      errors: 2,
      throttled: 2,
    });
  });

  it('gives each API its own bucket with the documented figures', () => {
    const spec = (action: string, shape = {}) => requestBucketOf(action, shape);
    expect(spec('DescribeNetworkInterfaces')).toMatchObject({
      bucket: 'DescribeNetworkInterfaces/unfiltered',
      category: 'unfiltered-non-mutating',
      spec: { capacity: 50, refillPerSecond: 10 },
    });
    expect(spec('DescribeNetworkInterfaces', { filtered: true })).toMatchObject({
      bucket: 'DescribeNetworkInterfaces',
      spec: { capacity: 100, refillPerSecond: 20 },
    });
    expect(spec('DescribeSubnets').spec).toEqual({ capacity: 100, refillPerSecond: 20 });
    expect(spec('AttachNetworkInterface')).toMatchObject({ category: 'mutating', spec: { capacity: 50 } });
    expect(spec('CreateNetworkInterface').spec).toEqual({ capacity: 100, refillPerSecond: 5 });
    expect(spec('CreateTags').spec).toEqual({ capacity: 100, refillPerSecond: 10 });
    expect(spec('DeleteTags').spec).toEqual({ capacity: 100, refillPerSecond: 10 });
    expect(spec('RunInstances').spec).toEqual({ capacity: 5, refillPerSecond: 2 });
    expect(resourceBucketOf('RunInstances')?.spec).toEqual({ capacity: 1000, refillPerSecond: 2 });
    expect(resourceBucketOf('TerminateInstances')?.spec).toEqual({ capacity: 1000, refillPerSecond: 20 });
    expect(resourceBucketOf('AttachNetworkInterface')).toBeUndefined();

    let now = 0;
    const buckets = new TokenBuckets(() => now);
    const drain = (action: string, shape = {}) => {
      let n = 0;
      while (buckets.take(action, shape)) n++;
      return n;
    };
    expect(drain('DescribeNetworkInterfaces')).toBe(50);
    expect(drain('DescribeNetworkInterfaces', { paginated: true })).toBe(100);
    expect(drain('DescribeInstances', { filtered: true })).toBe(100);
    expect(drain('DescribeSubnets')).toBe(100); // not DescribeInstances' bucket
    now += 1000;
    expect(drain('DescribeNetworkInterfaces')).toBe(10);
    expect(drain('DescribeSubnets')).toBe(20);
    expect(drain('AttachNetworkInterface')).toBe(50);
    expect(drain('DetachNetworkInterface')).toBe(50); // its own bucket too
    now += 1000; // 5 per second
    expect(drain('AttachNetworkInterface')).toBe(5);
    expect(drain('CreateTags')).toBe(100); // a bucket starts full
    // Resource tokens are instances: 1000 at once, then 2 a second.
    expect(buckets.takeResources('RunInstances', 1000)).toBe(true);
    expect(buckets.takeResources('RunInstances', 1)).toBe(false);
    now += 1000;
    expect(buckets.takeResources('RunInstances', 2)).toBe(true);
    expect(buckets.takeResources('RunInstances', 1)).toBe(false);
  });

  it('scales every bucket for fleet benchmarks and bounds the time a set of calls needs', () => {
    let now = 0;
    const tenth = new TokenBuckets({ clock: () => now, scale: 0.1 });
    let n = 0;
    while (tenth.take('CreateNetworkInterface')) n++;
    expect(n).toBe(10);
    now += 2000; // 0.5 per second
    n = 0;
    while (tenth.take('CreateNetworkInterface')) n++;
    expect(n).toBe(1);
    // 300 CreateNetworkInterface: 100 at once, then 5 a second -> 40 s; 60 attaches: (60 - 50) / 5 = 2 s.
    expect(
      tokenBucketBoundSeconds([
        { action: 'CreateNetworkInterface', count: 300 },
        { action: 'AttachNetworkInterface', count: 60 },
      ]),
    ).toBe(40);
    expect(tokenBucketBoundSeconds([{ action: 'CreateNetworkInterface', count: 30 }], 0.1)).toBe(40);
    expect(tokenBucketBoundSeconds([{ action: 'DescribeSubnets', count: 100 }])).toBe(0);
  });

  it('throttles RunInstances by instances launched (the resource bucket)', async () => {
    frozenAt = Date.now();
    f.server.faults.setThrottling(true, {
      RunInstances: { capacity: 100, refillPerSecond: 0 },
      'RunInstances/resources': { capacity: 3, refillPerSecond: 0 },
    });
    const run = (n: number) =>
      ec2.send(
        new RunInstancesCommand({
          ImageId: 'ami-1',
          InstanceType: 't3.small',
          MinCount: n,
          MaxCount: n,
          SubnetId: f.subnetId,
        }),
      );
    await run(2);
    expect((await errorOf(() => run(2))).name).toBe('RequestLimitExceeded');
    await run(1);
  });

  it('rejects unknown bucket names', async () => {
    const r = await control('PUT', 'faults/throttling', {
      enabled: true,
      buckets: { Describe: { capacity: 1, refillPerSecond: 1 } },
    });
    expect(r.status).toBe(400);
    expect(String(r.json.error)).toContain("unknown bucket 'Describe'");
  });
});

describe('injected errors', () => {
  it('fails the next N calls of an action with the given 5xx, then recovers', async () => {
    const r = await control('POST', 'faults/errors', {
      action: 'CreateNetworkInterface',
      httpStatus: 500,
      count: 2,
    });
    expect(r.status).toBe(200);
    const create = () => ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: f.subnetId }));
    for (let k = 0; k < 2; k++) {
      expect(await errorOf(create)).toMatchObject({
        name: 'InternalError',
        $metadata: { httpStatusCode: 500 },
      });
    }
    const ok = await create();
    expect(ok.NetworkInterface!.NetworkInterfaceId).toMatch(/^eni-/);
    await describeEnis(); // other actions were never affected
  });

  it('fails by probability and for every action with "*"', async () => {
    f.server.faults.injectError({ action: '*', httpStatus: 503, code: 'Unavailable', probability: 1 });
    expect(await errorOf(() => ec2.send(new DescribeSubnetsCommand({})))).toMatchObject({
      name: 'Unavailable',
      $metadata: { httpStatusCode: 503 },
    });
    f.server.faults.reset();
    f.server.faults.injectError({ action: 'DescribeSubnets', probability: 0 });
    for (let k = 0; k < 10; k++) await ec2.send(new DescribeSubnetsCommand({}));
  });

  it('validates injections', async () => {
    expect((await control('POST', 'faults/errors', { action: 'X', count: 1, probability: 0.5 })).status).toBe(
      400,
    );
    expect((await control('POST', 'faults/errors', { action: 'X', httpStatus: 200, count: 1 })).status).toBe(
      400,
    );
    expect((await control('POST', 'faults/errors', '{nope')).json.error).toContain('not valid JSON');
  });
});

describe('latency', () => {
  it('delays only the chosen action', async () => {
    const timed = async (fn: () => Promise<unknown>) => {
      const t = Date.now();
      await fn();
      return Date.now() - t;
    };
    const subnets = () => ec2.send(new DescribeSubnetsCommand({}));
    await control('PUT', 'faults/latency', { action: 'DescribeSubnets', ms: 400 });
    expect(await timed(subnets)).toBeGreaterThanOrEqual(395);
    expect(await timed(describeEnis)).toBeLessThan(395);
    await control('PUT', 'faults/latency', { action: 'DescribeSubnets', ms: null });
    expect(await timed(subnets)).toBeLessThan(395);
  });
});

describe('eventual consistency', () => {
  it('hides a new ENI from Describe for the window, then shows it', async () => {
    frozenAt = Date.now();
    await control('PUT', 'faults/consistency', { windowMs: 5_000 });
    const created = await ec2.send(new CreateNetworkInterfaceCommand({ SubnetId: f.subnetId }));
    const id = created.NetworkInterface!.NetworkInterfaceId!;
    const byId = () => ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [id] }));
    expect((await errorOf(byId)).name).toBe('InvalidNetworkInterfaceID.NotFound');
    const listed = (await describeEnis()).NetworkInterfaces!.map((e) => e.NetworkInterfaceId);
    expect(listed).not.toContain(id);
    frozenAt += 4_000;
    expect((await errorOf(byId)).name).toBe('InvalidNetworkInterfaceID.NotFound');
    frozenAt = Date.now() + 5_001;
    expect((await byId()).NetworkInterfaces![0]!.NetworkInterfaceId).toBe(id);
  });
});

describe('detach delay', () => {
  it('keeps a detaching ENI in use until the detach completes', async () => {
    expect((await control('PUT', 'faults/detach-delay', { ms: 1_000 })).json.detachDelayMs).toBe(1_000);
    const instance = f.state.runInstance({ instanceType: 'm5.large', subnetId: f.subnetId });
    const eni = f.state.createNetworkInterface({ subnetId: f.subnetId });
    const { attachmentId } = f.state.attachNetworkInterface({
      eniId: eni.id,
      instanceId: instance.id,
      deviceIndex: 1,
    });
    const detached: string[] = [];
    f.state.on('eni-detached', (e: { eniId: string }) => detached.push(e.eniId));
    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attachmentId }));
    const d = (await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eni.id] })))
      .NetworkInterfaces![0]!;
    expect(d).toMatchObject({ Status: 'detaching', Attachment: { Status: 'detaching' } });
    expect(
      (await errorOf(() => ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni.id }))))
        .message,
    ).toContain('is currently in use');
    expect(detached).toEqual([]);
    for (let waited = 0; detached.length === 0 && waited < 3_000; waited += 50)
      await new Promise((r) => setTimeout(r, 50));
    expect(detached).toEqual([eni.id]);
    expect(f.state.getEni(eni.id)).toMatchObject({ status: 'available', attachment: undefined });
    await ec2.send(new DeleteNetworkInterfaceCommand({ NetworkInterfaceId: eni.id }));
    await control('PUT', 'faults/detach-delay', { ms: 0 }); // asynchrony, not a fault: DELETE keeps it
  });
});

describe('call log', () => {
  it('counts calls per action and per caller (access key id), with errors, and resets', async () => {
    const alice = f.client({ accessKeyId: 'AKIDALICE' });
    const bob = f.client({ accessKeyId: 'AKIDBOB' });
    await alice.send(new DescribeNetworkInterfacesCommand({}));
    await alice.send(new DescribeNetworkInterfacesCommand({}));
    await bob.send(new DescribeSubnetsCommand({}));
    await errorOf(() => bob.send(new DescribeSubnetsCommand({ SubnetIds: ['subnet-0123456789abcdef0'] })));
    expect(f.server.calls.count('DescribeNetworkInterfaces')).toBe(2);
    expect(f.server.calls.count('DescribeSubnets', 'AKIDBOB')).toBe(2);
    const { json } = await control('GET', 'calls?entries=1');
    expect(json.total).toBe(4);
    expect(json.byCaller).toEqual({
      AKIDALICE: { DescribeNetworkInterfaces: 2 },
      AKIDBOB: { DescribeSubnets: 2 },
    });
    expect(json.byAction).toMatchObject({ DescribeSubnets: { calls: 2, errors: 1, throttled: 0 } });
    const entries = json.entries as { action: string; errorCode?: string; httpStatus: number }[];
    expect(entries.at(-1)).toMatchObject({
      action: 'DescribeSubnets',
      errorCode: 'InvalidSubnetID.NotFound',
      httpStatus: 400,
      params: { 'SubnetId.1': 'subnet-0123456789abcdef0' },
    });
    await control('DELETE', 'calls');
    expect((await control('GET', 'calls')).json.total).toBe(0);
  });

  it('serves the model as JSON and 404s unknown control paths', async () => {
    const state = await control('GET', 'state');
    expect((state.json.subnets as { id: string }[]).map((s) => s.id)).toContain(f.subnetId);
    expect((await control('GET', 'nothing-here')).status).toBe(404);
  });
});
