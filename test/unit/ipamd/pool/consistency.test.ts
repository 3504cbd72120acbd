/**
 * ipamd's start-up discovery, checkpoint replay, reconciliation and pool against the EC2 and IMDS
 * emulators (real Query API and IMDSv2 over loopback), with EC2's eventual-consistency window on a
 * fake clock: a checkpointed assignment survives until its ENI is proven gone (IMDS and EC2 agree, a
 * window apart), never on one Describe's silence, and a stale view of an ENI does not turn into a
 * stream of refused AssignPrivateIpAddresses.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Faults } from '../../../../infra/local-vpc/ec2/faults.js';
import { type Ec2Server, startEc2Server } from '../../../../infra/local-vpc/ec2/server.js';
import { Ec2State, type Instance } from '../../../../infra/local-vpc/ec2/state.js';
import { type ImdsServer, startImdsServer } from '../../../../infra/local-vpc/imds/server.js';
import { Ec2Api, NO_BACKOFF } from '../../../../ipamd/aws/ec2.js';
import { Imds } from '../../../../ipamd/aws/imds.js';
import { Ec2QueryClient } from '../../../../ipamd/aws/query-client.js';
import { loadConfig } from '../../../../ipamd/config.js';
import { replayState } from '../../../../ipamd/daemon.js';
import type { Datastore, EniInfo } from '../../../../ipamd/datastore/datastore.js';
import { SavedAssignments } from '../../../../ipamd/datastore/saved.js';
import { discover } from '../../../../ipamd/discovery.js';
import { type HostNetwork, PoolExecutor } from '../../../../ipamd/pool/executor.js';
import { PoolManager } from '../../../../ipamd/pool/manager.js';
import { Reconciler } from '../../../../ipamd/pool/reconcile.js';
import { SubnetPicker } from '../../../../ipamd/pool/subnets.js';
import { retryStage } from '../../../../ipamd/startup.js';

const log = pino({ level: 'silent' });
const WINDOW_MS = 10_000;
const pod = (containerId: string) => ({ network: 'aws-cni', containerId, ifName: 'eth0' });

let state: Ec2State;
let server: Ec2Server;
let imdsServer: ImdsServer;
let inst: Readonly<Instance>;
let subnetId: string;
let offsetMs: number;
let imds: Imds;
let ec2: Ec2Api;
let host: HostNetwork & { setUp: string[]; tornDown: string[] };

beforeEach(async () => {
  offsetMs = 0;
  state = new Ec2State();
  const vpc = state.createVpc({ cidr: '10.0.0.0/16' });
  subnetId = state.createSubnet({ vpcId: vpc.id, cidr: '10.0.1.0/24', az: 'us-west-2a' }).id;
  // The consistency window runs on a clock the test moves forward.
  server = await startEc2Server({ state, faults: new Faults(() => Date.now() + offsetMs) });
  inst = state.runInstance({ instanceType: 'm5.large', subnetId });
  // The instance is old: only ENIs created from now on are inside the window.
  state.requireEni(inst.primaryEniId).createdAt = new Date(Date.now() - 3_600_000);
  state.assignPrivateIpAddresses({ eniId: inst.primaryEniId, count: 9 });
  server.faults.setConsistencyWindow(WINDOW_MS);
  imdsServer = await startImdsServer({ state, resolveInstance: () => inst.id });
  imds = new Imds(imdsServer.url, { retryDelayMs: 1 });
  ec2 = new Ec2Api(
    new Ec2QueryClient({
      region: 'us-west-2',
      endpoint: server.url,
      credentials: async () => ({ accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' }),
    }),
    { maxAttempts: 1, mutatingRate: 1000, describeRate: 1000, log, backoff: NO_BACKOFF },
  );
  const setUp: string[] = [];
  const tornDown: string[] = [];
  host = {
    setUp,
    tornDown,
    setupEni: async (e: EniInfo) => void setUp.push(e.id),
    teardownEni: async (e: EniInfo) => void tornDown.push(e.id),
  };
});

afterEach(async () => {
  await imdsServer.close();
  await server.close();
  state.dispose();
});

/** A secondary ENI attached at `device` with `count` addresses, created now (inside the window). */
function attachEni(device: number, count: number) {
  const eni = state.createNetworkInterface({ subnetId, secondaryCount: count });
  state.attachNetworkInterface({ eniId: eni.id, instanceId: inst.id, deviceIndex: device });
  return state.getEni(eni.id)!;
}

const secondaries = (eniId: string) =>
  state
    .getEni(eniId)!
    .privateIps.filter((p) => !p.primary)
    .map((p) => p.address);

function reconciler(ds: Datastore, unmanaged = new Map<string, number>()) {
  return new Reconciler({
    imds,
    ec2,
    ds,
    host,
    log,
    instanceId: inst.id,
    unmanaged,
    primaryForPods: true,
    consistencyWindowMs: WINDOW_MS,
    now: () => Date.now() + offsetMs,
  });
}

/** The daemon's stages 1 and 3: discovery, then the checkpoint replayed into the datastore. */
async function restart(allocations: { containerId: string; address: string; eniId: string }[]) {
  const cfg = { ...loadConfig({}), imdsEndpoint: imdsServer.url };
  const d = await discover(cfg, log, { imds, ec2 });
  const saved = new SavedAssignments(
    {
      version: 1,
      allocations: allocations.map((a) => ({
        ...pod(a.containerId),
        ...a,
        assignedAt: new Date().toISOString(),
      })),
      cooldowns: [],
    },
    30_000,
  );
  return { d, ds: replayState(cfg, log, d, saved) };
}

describe('start-up discovery under IMDS and EC2 trouble', () => {
  it('IMDS 500s and EC2 503s past the clients own attempts are waited out, with the reason reported', async () => {
    imdsServer.injectError({ status: 500, count: 6, pathPrefix: '/latest/meta-data/network/' });
    server.faults.injectError({ action: 'DescribeNetworkInterfaces', httpStatus: 503, count: 2 });
    const cfg = { ...loadConfig({}), imdsEndpoint: imdsServer.url };
    const reasons: string[] = [];
    const d = await retryStage('discover', () => discover(cfg, log, { imds, ec2 }), {
      log,
      onWait: (r) => reasons.push(r),
      firstDelayMs: 1,
    });
    expect(d.managed.map((m) => m.info.id)).toEqual([inst.primaryEniId]);
    expect(reasons.some((r) => /^discover: cannot read network\/interfaces\/macs\//.test(r))).toBe(true);
    expect(reasons.some((r) => /^discover: EC2 server error on DescribeNetworkInterfaces/.test(r))).toBe(
      true,
    );
  });
});

describe('restart inside a consistency window', () => {
  it('an ENI IMDS lists but Describe hides keeps its pods; its free addresses wait for EC2', async () => {
    const eni = attachEni(1, 5);
    const [a1, a2] = secondaries(eni.id);
    const { d, ds } = await restart([
      { containerId: 'on-hidden-1', address: a1!, eniId: eni.id },
      { containerId: 'on-hidden-2', address: a2!, eniId: eni.id },
    ]);
    expect(d.managed.find((m) => m.info.id === eni.id)).toMatchObject({ unconfirmed: true });
    // Both pods keep their addresses; none of the ENI's three free ones is handed out meanwhile.
    expect(ds.lookup(pod('on-hidden-1'))?.address).toBe(a1);
    expect(ds.lookup(pod('on-hidden-2'))?.address).toBe(a2);
    expect(ds.statsOf(eni.id)).toEqual({ total: 2, assigned: 2, cooling: 0, ready: 0 });
    const onPrimary = Array.from({ length: 9 }, (_, i) => ds.assign(pod(`p${i}`))?.eni.id);
    expect(onPrimary.every((id) => id === inst.primaryEniId)).toBe(true);
    expect(ds.assign(pod('p9'))).toBeNull();
    // Host networking waits too (the ENI could be someone else's, tagged no_manage).
    expect(host.setUp).toEqual([]);

    // Inside the window reconciliation keeps it as it is; after it EC2 confirms it.
    const r = reconciler(ds);
    expect((await r.run()).enisUnconfirmed).toEqual([eni.id]);
    expect(r.pending).toBe(true);
    offsetMs += WINDOW_MS;
    const confirmed = await r.run();
    expect(confirmed.enisConfirmed).toEqual([eni.id]);
    expect(host.setUp).toEqual([eni.id]);
    expect(ds.getEni(eni.id)?.attachmentId).toMatch(/^eni-attach-/);
    const next = ds.assign(pod('p9'))!;
    expect(next.eni.id).toBe(eni.id);
    expect([a1, a2]).not.toContain(next.address);
  });

  it('the primary ENI of a new instance is used on IMDS word', async () => {
    state.requireEni(inst.primaryEniId).createdAt = new Date(Date.now());
    const { d, ds } = await restart([]);
    expect(d.managed[0]).toMatchObject({ unconfirmed: false, info: { isPrimary: true } });
    expect(ds.stats().ready).toBe(9);
  });

  it('an ENI neither IMDS nor EC2 shows drops its entries, whose addresses cool down', async () => {
    const { ds } = await restart([
      { containerId: 'gone', address: '10.0.1.200', eniId: 'eni-0123456789abcdef0' },
    ]);
    expect(ds.lookup(pod('gone'))).toBeNull();
    expect(ds.cooldowns().map((c) => c.address)).toEqual(['10.0.1.200']);
  });
});

describe('reconciliation inside a consistency window', () => {
  /** A datastore that knows the node as ipamd had it: the primary and a new ENI holding pods. */
  async function running(device = 1, pods = 2) {
    const eni = attachEni(device, 5);
    offsetMs += WINDOW_MS; // visible while ipamd learnt it...
    const { ds } = await restart([]);
    offsetMs -= WINDOW_MS; // ...and hidden again: the window is measured from its creation
    const held = secondaries(eni.id)
      .slice(0, pods)
      .map((address, i) => {
        ds.assign(pod(`w${i}`), address);
        return address;
      });
    return { ds, eni, held };
  }

  it('keeps an ENI Describe hides while IMDS lists it: no teardown, nothing stripped, still in use', async () => {
    const { ds, eni, held } = await running();
    // IMDS differs (an address went behind ipamd's back), so reconciliation asks EC2, which hides the ENI.
    const taken = secondaries(eni.id)[4]!;
    state.unassignPrivateIpAddresses({ eniId: eni.id, addresses: [taken] });
    const r = reconciler(ds);
    const report = await r.run();
    expect(report).toMatchObject({ enisRemoved: [], addressesRemoved: [], enisUnconfirmed: [eni.id] });
    expect(host.tornDown).toEqual([]);
    expect(ds.getEni(eni.id)).toMatchObject({ unconfirmed: false });
    expect(ds.getEni(eni.id)?.secondaryIps.size).toBe(5);
    expect(ds.freeIps(eni.id)).toHaveLength(3);
    for (const [i, a] of held.entries()) expect(ds.lookup(pod(`w${i}`))?.address).toBe(a);
    // After the window EC2's view wins: the taken address leaves the pool.
    offsetMs += WINDOW_MS;
    const after = await r.run();
    expect(after).toMatchObject({ enisUnconfirmed: [], addressesRemoved: [taken] });
    expect(ds.freeIps(eni.id)).toHaveLength(2);
    expect(r.pending).toBe(false);
  });

  it('forgets an ENI only when IMDS and EC2 still agree it is gone a window later', async () => {
    const { ds, eni } = await running(1, 0);
    offsetMs += WINDOW_MS;
    state.detachNetworkInterface(eni.attachment!.attachmentId);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the detach settles in IMDS
    const r = reconciler(ds);
    expect((await r.run()).enisRemoved).toEqual([]);
    expect(ds.getEni(eni.id)?.unconfirmed).toBe(true);
    expect(host.tornDown).toEqual([]);
    offsetMs += WINDOW_MS / 2;
    expect((await r.run()).enisRemoved).toEqual([]);
    offsetMs += WINDOW_MS / 2;
    expect((await r.run()).enisRemoved).toEqual([eni.id]);
    expect(host.tornDown).toEqual([eni.id]);
  });

  it('a proven-gone ENI with pods: its free addresses go, the pods keep theirs until their own DEL', async () => {
    const { ds, eni, held } = await running(1, 1);
    offsetMs += WINDOW_MS;
    state.detachNetworkInterface(eni.attachment!.attachmentId);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const r = reconciler(ds);
    await r.run();
    offsetMs += WINDOW_MS;
    const report = await r.run();
    expect(report.assignedButGone).toEqual(held);
    expect(ds.lookup(pod('w0'))?.address).toBe(held[0]);
    // Released by its own attachment: the address leaves the pool instead of going to another pod.
    expect(ds.release(pod('w0'))?.address).toBe(held[0]);
    expect(ds.hasAddress(held[0]!)).toBe(false);
    expect((await r.run()).enisRemoved).toEqual([]);
    offsetMs += WINDOW_MS;
    expect((await r.run()).enisRemoved).toEqual([eni.id]);
  });
});

describe('the pool against a stale view of an ENI', () => {
  it('counts an ENI full when EC2 says PrivateIpAddressLimitExceeded, backs off, and asks for a reconcile', async () => {
    const { ds } = await restart([]);
    for (let i = 0; i < 9; i++) ds.assign(pod(`p${i}`));
    // ipamd's view lost 4 of the addresses EC2 still has on the primary (pods keep them, unbacked).
    ds.forget(inst.primaryEniId, { ips: secondaries(inst.primaryEniId).slice(0, 4) });
    expect(ds.getEni(inst.primaryEniId)?.secondaryIps.size).toBe(5);
    const subnets = new SubnetPicker({
      primary: { subnetId, securityGroups: [] },
      customSubnet: null,
      discovery: null,
      ec2,
      log,
    });
    const executor = new PoolExecutor({
      ec2,
      imds,
      ds,
      identity: await imds.identity(),
      subnets,
      host,
      log,
      eniTags: {},
    });
    let now = Date.now();
    let asked = 0;
    const pool = new PoolManager({
      ds,
      executor,
      subnets,
      log,
      mode: 'ip',
      targets: { warmEni: 0, warmIp: 2, minIp: 0, warmPrefix: 0 },
      limits: { maxEnis: 1, slotsPerEni: 9, maxPods: 29 },
      shrinkIntervalMs: 3_600_000,
      disableProvisioning: false,
      unmanagedDeviceNumbers: () => [],
      now: () => now,
      onAddressLimit: () => asked++,
    });
    const assigns = () => server.calls.count('AssignPrivateIpAddresses');
    await pool.tick();
    expect(assigns()).toBe(1);
    expect(asked).toBe(1);
    // Within the backoff no further attempt, however often the pool ticks.
    for (let i = 0; i < 5; i++) await pool.tick();
    expect(assigns()).toBe(1);
    expect(pool.status.blocked?.reason).toMatch(/EC2 reports ENIs full \(PrivateIpAddressLimitExceeded\)/);
    now += 2_500;
    await pool.tick();
    expect(assigns()).toBe(2);
    now += 2_500;
    await pool.tick();
    expect(assigns()).toBe(2); // the second backoff is 4 s
    // Reconciliation brings the view back in line: the pods' addresses are backed again.
    await reconciler(ds).run();
    expect(ds.getEni(inst.primaryEniId)?.secondaryIps.size).toBe(9);
  });
});
