import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Ec2Error } from '../../../ipamd/aws/errors.js';
import { Checkpoint, type CheckpointData, CheckpointError } from '../../../ipamd/checkpoint.js';
import { ConfigError } from '../../../ipamd/config.js';
import { Datastore } from '../../../ipamd/datastore/datastore.js';
import { SavedAssignments } from '../../../ipamd/datastore/saved.js';
import { IpamService } from '../../../ipamd/ipam-handler.js';
import { isPermanent, PermanentStartError, retryStage, StartupGate } from '../../../ipamd/startup.js';
import { PROTOCOL_VERSION } from '../../../lib/protocol/ipamd.js';

const log = pino({ level: 'silent' });
const entry = (containerId: string, address: string, network = 'aws-cni') => ({
  network,
  containerId,
  ifName: 'eth0',
  address,
  eniId: 'eni-1',
  assignedAt: '2026-01-01T00:00:00.000Z',
});
const key = (containerId: string) => ({ network: 'aws-cni', containerId, ifName: 'eth0' });

describe('start-up errors', () => {
  it('retries transient failures and reports why it waits', async () => {
    const reasons: string[] = [];
    let calls = 0;
    const out = await retryStage(
      'discover',
      async () => {
        if (++calls < 3)
          throw new Ec2Error('server', 'DescribeNetworkInterfaces', 'Unavailable', 'EC2 server error');
        return 'found';
      },
      { log, onWait: (r) => reasons.push(r), firstDelayMs: 1 },
    );
    expect(out).toBe('found');
    expect(reasons).toHaveLength(2);
    expect(reasons[0]).toMatch(/^discover: EC2 server error; retrying in \d+s \(attempt 1\)$/);
  });

  it('gives up at once on a permanent error', async () => {
    let calls = 0;
    const fail = (err: Error) =>
      retryStage(
        'discover',
        async () => {
          calls++;
          throw err;
        },
        { log, onWait: () => undefined, firstDelayMs: 1 },
      );
    await expect(fail(new PermanentStartError('t9.huge is unknown'))).rejects.toThrow('t9.huge is unknown');
    expect(calls).toBe(1);
  });

  it.each([
    [new PermanentStartError('x'), true],
    [new ConfigError(['bad']), true],
    [new CheckpointError('unreadable'), true],
    [new Ec2Error('unauthorized', 'CreateTags', 'UnauthorizedOperation', 'not permitted'), true],
    [new Ec2Error('invalid', 'CreateTags', 'InvalidParameterValue', 'bad'), true],
    [Object.assign(new Error('Operation not permitted'), { code: 'EPERM' }), true],
    [new Ec2Error('throttled', 'DescribeNetworkInterfaces', 'RequestLimitExceeded', 'throttled'), false],
    [new Ec2Error('server', 'DescribeNetworkInterfaces', 'InternalError', '500'), false],
    [new Ec2Error('network', 'DescribeNetworkInterfaces', 'ETIMEDOUT', 'timeout'), false],
    [new Ec2Error('not_found', 'CreateTags', 'InvalidNetworkInterfaceID.NotFound', 'window'), false],
    [new Error('cannot read instance-id from IMDS: no answer within 2000 ms'), false],
    [new Error('IMDS lists no ENI with the primary MAC 0a:00:00:00:00:01'), false],
  ])('%s is permanent: %s', (err, permanent) => {
    expect(isPermanent(err)).toBe(permanent);
  });
});

describe('SavedAssignments: releases before the datastore exists', () => {
  it('releases only the attachment that holds an address, into cooldown, and gc by network', () => {
    const now = 1_000;
    const saved = new SavedAssignments(
      {
        version: 1,
        allocations: [entry('a', '10.0.1.11'), entry('b', '10.0.1.12'), entry('c', '10.0.1.13', 'other')],
        cooldowns: [{ address: '10.0.1.20', until: 500 }],
      },
      30_000,
      () => now,
    );
    expect(saved.release(key('zzz'))).toBeNull();
    expect(saved.release({ ...key('a'), ifName: 'eth1' })).toBeNull();
    expect(saved.release(key('a'))?.address).toBe('10.0.1.11');
    expect(saved.release(key('a'))).toBeNull();
    expect(saved.gc('aws-cni', []).map((e) => e.containerId)).toEqual(['b']);
    const snap = saved.snapshot();
    expect(snap.allocations.map((e) => e.containerId)).toEqual(['c']);
    // Expired cooldowns are not carried; fresh ones last the full period.
    expect(snap.cooldowns).toEqual([
      { address: '10.0.1.11', until: 31_000 },
      { address: '10.0.1.12', until: 31_000 },
    ]);
    saved.undo([entry('a', '10.0.1.11')]);
    expect(saved.snapshot().allocations.map((e) => e.containerId)).toEqual(['c', 'a']);
  });
});

describe('StartupGate', () => {
  function rig(initial: CheckpointData | null) {
    const path = join(mkdtempSync(join(tmpdir(), 'ipamd-gate-')), 'ipam.json');
    const saved = new SavedAssignments(initial, 30_000);
    let snapshot = () => saved.snapshot();
    const checkpoint = new Checkpoint(path, () => snapshot());
    const gate = new StartupGate(saved, () => checkpoint.persist(), log);
    const onDisk = () => JSON.parse(readFileSync(path, 'utf8')) as CheckpointData;
    return { gate, saved, checkpoint, onDisk, switchTo: (f: () => CheckpointData) => (snapshot = f) };
  }
  const del = (containerId: string) => ({ v: PROTOCOL_VERSION, op: 'del' as const, ...key(containerId) });
  const add = (containerId: string) => ({
    ...del(containerId),
    op: 'add' as const,
    netns: '/var/run/netns/x',
  });

  it('says not ready with the reason, tells ADD to retry, and answers DEL from the checkpoint', async () => {
    const { gate, onDisk } = rig({ version: 1, allocations: [entry('a', '10.0.1.11')], cooldowns: [] });
    gate.setReason(
      'discover: EC2 server error on DescribeNetworkInterfaces (503); retrying in 2s (attempt 3)',
    );
    expect(await gate.health()).toEqual({
      ready: false,
      reason:
        'ipamd is starting: discover: EC2 server error on DescribeNetworkInterfaces (503); retrying in 2s (attempt 3)',
      freeAddresses: 0,
    });
    await expect(gate.add(add('new'))).rejects.toMatchObject({ code: 'not_ready' });
    expect(await gate.del(del('a'))).toEqual({
      address: '10.0.1.11',
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: [],
    });
    expect(onDisk().allocations).toEqual([]);
    expect(onDisk().cooldowns.map((c) => c.address)).toEqual(['10.0.1.11']);
    expect(await gate.del(del('a'))).toEqual({
      address: null,
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: [],
    });
    const gc = await gate.gc({ v: PROTOCOL_VERSION, op: 'gc', network: 'aws-cni', valid: [] });
    expect(gc.released).toEqual([]);
  });

  it('hands every request to the datastore once it is replayed, add still waiting for the pool', async () => {
    const { gate, saved, checkpoint, switchTo, onDisk } = rig({
      version: 1,
      allocations: [entry('a', '10.0.1.11'), entry('b', '10.0.1.12')],
      cooldowns: [],
    });
    await gate.del(del('b'));
    const ds = new Datastore(30_000);
    ds.addEni({
      id: 'eni-1',
      mac: '0a:00:00:00:00:02',
      deviceNumber: 1,
      subnetId: 'subnet-1',
      subnetCidr: '10.0.1.0/24',
      primaryIp: '10.0.1.10',
      attachmentId: 'x',
      isPrimary: false,
      forPods: true,
    });
    ds.addIps('eni-1', ['10.0.1.11', '10.0.1.12']);
    // The replay starts from what the releases left.
    const data = saved.snapshot();
    expect(data.allocations.map((e) => e.containerId)).toEqual(['a']);
    ds.assign({ ...key('a'), assignedAt: data.allocations[0]!.assignedAt }, '10.0.1.11');
    for (const c of data.cooldowns) ds.setCooldown(c.address, c.until);
    const service = new IpamService({
      ds,
      checkpoint,
      log,
      vpcCidrs: ['10.0.0.0/16'],
      snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
      podMtu: 9001,
      vethPrefix: 'eni',
      maxPods: 29,
    });
    switchTo(() => ({
      version: 1,
      allocations: ds.assignments().map((x) => ({ ...x.assignment, address: x.address, eniId: x.eniId })),
      cooldowns: ds.cooldowns(),
    }));
    gate.open(service);
    gate.setReason('filling the pool');
    await expect(gate.add(add('new'))).rejects.toMatchObject({
      code: 'not_ready',
      message: 'ipamd is starting: filling the pool',
    });
    // b's address still cools down: released before the datastore existed, it is not handed out early.
    expect(ds.stats()).toEqual({ total: 2, assigned: 1, cooling: 1, ready: 0 });
    expect((await gate.del(del('a'))).address).toBe('10.0.1.11');
    expect(onDisk().allocations).toEqual([]);
    service.setReady(null);
    expect(await gate.health()).toEqual({ ready: true, freeAddresses: 0 });
  });
});
