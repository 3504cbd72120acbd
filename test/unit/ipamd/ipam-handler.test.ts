import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Checkpoint } from '../../../ipamd/checkpoint.js';
import { Datastore } from '../../../ipamd/datastore/datastore.js';
import { IpamService } from '../../../ipamd/ipam-handler.js';
import type { PoolStatus } from '../../../ipamd/pool/manager.js';
import { PROTOCOL_VERSION } from '../../../lib/protocol/ipamd.js';

function setup(
  opts: { ips?: string[]; maxPods?: number; status?: Partial<PoolStatus>; cooldownMs?: number } = {},
) {
  const ds = new Datastore(opts.cooldownMs ?? 30_000);
  ds.addEni({
    id: 'eni-1',
    mac: '0a:00:00:00:00:02',
    deviceNumber: 1,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.1.0/24',
    primaryIp: '10.0.1.10',
    attachmentId: 'eni-attach-1',
    isPrimary: false,
    forPods: true,
  });
  ds.addIps('eni-1', opts.ips ?? ['10.0.1.11', '10.0.1.12']);
  const path = join(mkdtempSync(join(tmpdir(), 'ipamd-h-')), 'ipam.json');
  const checkpoint = new Checkpoint(path, () => ({
    version: 1,
    allocations: ds.assignments().map((a) => ({ ...a.assignment, address: a.address, eniId: a.eniId })),
    cooldowns: ds.cooldowns(),
  }));
  let kicks = 0;
  const pool = {
    kick: () => {
      kicks++;
    },
    status: { blocked: null, lastError: null, lastAction: null, ...opts.status } as PoolStatus,
  };
  const h = new IpamService({
    ds,
    checkpoint,
    pool,
    log: pino({ level: 'silent' }),
    vpcCidrs: ['10.0.0.0/16'],
    snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
    podMtu: 9001,
    vethPrefix: 'eni',
    maxPods: opts.maxPods ?? 29,
  });
  h.setReady(null);
  const saved = () => JSON.parse(readFileSync(path, 'utf8')) as { allocations: { containerId: string }[] };
  return { ds, h, saved, kicks: () => kicks };
}

const add = (containerId: string) => ({
  v: PROTOCOL_VERSION,
  op: 'add' as const,
  network: 'aws-cni',
  containerId,
  ifName: 'eth0',
  netns: '/var/run/netns/x',
  podNamespace: 'default',
  podName: containerId,
});
const del = (containerId: string) => ({
  v: PROTOCOL_VERSION,
  op: 'del' as const,
  network: 'aws-cni',
  containerId,
  ifName: 'eth0',
});

describe('IpamService', () => {
  it('answers add with the ENI routing facts and persists before acknowledging', async () => {
    const { h, saved, kicks } = setup();
    const r = await h.add(add('a'));
    expect(r).toEqual({
      address: expect.stringMatching(/^10\.0\.1\.1[12]$/),
      eniId: 'eni-1',
      deviceNumber: 1,
      routeTable: 2,
      subnetCidr: '10.0.1.0/24',
      vpcCidrs: ['10.0.0.0/16'],
      snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
      mtu: 9001,
      vethPrefix: 'eni',
      hostVethMac: expect.stringMatching(/^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/),
    });
    expect(saved().allocations.map((a) => a.containerId)).toEqual(['a']);
    // The MAC is part of the record (checkpointed before the answer), and a repeat gets the same one.
    expect(saved().allocations).toEqual([expect.objectContaining({ hostVethMac: r.hostVethMac })]);
    expect(kicks()).toBe(1);
    expect(await h.add(add('a'))).toMatchObject({ address: r.address, hostVethMac: r.hostVethMac });
    expect((await h.add(add('b'))).hostVethMac).not.toBe(r.hostVethMac);
  });

  it('del persists the release; unknown keys are success with nulls', async () => {
    const { h, saved } = setup();
    const r = await h.add(add('a'));
    expect(await h.del(del('a'))).toEqual({
      address: r.address,
      deviceNumber: 1,
      routeTable: 2,
      hostVethMac: r.hostVethMac,
      heldByOthers: [],
    });
    expect(saved().allocations).toEqual([]);
    expect(await h.del(del('a'))).toEqual({
      address: null,
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: [],
    });
  });

  it('del says which of the addresses prevResult names another attachment holds now (a late DEL)', async () => {
    const { h } = setup({ ips: ['10.0.1.11'], cooldownMs: 0 });
    const old = await h.add(add('old'));
    await h.del(del('old'));
    const now = await h.add(add('new'));
    expect(now.address).toBe(old.address);
    // The runtime retries the old sandbox's DEL with its cached prevResult.
    const late = await h.del({ ...del('old'), addresses: [old.address, '10.0.1.99'] });
    expect(late).toEqual({
      address: null,
      deviceNumber: null,
      routeTable: null,
      hostVethMac: null,
      heldByOthers: [old.address],
    });
    // Its own address is not "held by others".
    expect((await h.del({ ...del('new'), addresses: [now.address] })).heldByOthers).toEqual([]);
  });

  it('says pool_empty while the pool grows, with the last EC2 problem', async () => {
    const { h } = setup({
      ips: [],
      status: { lastError: 'EC2 throttled AssignPrivateIpAddresses, retrying' },
    });
    await expect(h.add(add('a'))).rejects.toMatchObject({
      code: 'pool_empty',
      message:
        'no free address yet: the pool is growing (last attempt: EC2 throttled AssignPrivateIpAddresses, retrying); retry shortly',
    });
  });

  it('says exhausted with the precise reason: max pods, ENI limit, subnet full', async () => {
    const full = setup({ ips: ['10.0.1.11'], maxPods: 1 });
    await full.h.add(add('a'));
    await expect(full.h.add(add('b'))).rejects.toMatchObject({
      code: 'exhausted',
      message: 'no free address: node at max pods (1)',
    });
    const eniLimit = setup({
      ips: [],
      status: {
        blocked: { reason: 'ENI limit reached: 3 of 3 ENIs attached and full (9 IPs each)', permanent: true },
      },
    });
    await expect(eniLimit.h.add(add('a'))).rejects.toMatchObject({
      code: 'exhausted',
      message: 'no free address: ENI limit reached: 3 of 3 ENIs attached and full (9 IPs each)',
    });
    const subnet = setup({
      ips: [],
      status: {
        blocked: { reason: 'subnet subnet-1 has no free addresses (retrying in 4s)', permanent: false },
      },
    });
    await expect(subnet.h.add(add('a'))).rejects.toMatchObject({
      code: 'exhausted',
      message: expect.stringContaining('subnet subnet-1 has no free addresses'),
    });
  });

  // After every pod of a node is deleted its addresses cool down: the answer says so (how many, when
  // the first is free) and is retryable whatever the pool can do meanwhile.
  it.each([
    [
      'at the ENI limit',
      {
        blocked: { reason: 'ENI limit reached: 3 of 3 ENIs attached and full (9 IPs each)', permanent: true },
      },
      'the pool cannot grow: ENI limit reached: 3 of 3 ENIs attached and full (9 IPs each)',
    ],
    [
      'at the subnet limit',
      { blocked: { reason: 'subnet subnet-1 has no free addresses (retrying in 4s)', permanent: false } },
      'the pool cannot grow: subnet subnet-1 has no free addresses (retrying in 4s)',
    ],
    ['while growing', { lastError: null }, 'the pool is growing'],
  ])(
    'says the addresses are cooling down, how many and until when, %s',
    async (_state, status, meanwhile) => {
      const { h } = setup({ ips: ['10.0.1.11', '10.0.1.12'], status, cooldownMs: 30_000 });
      await h.add(add('a'));
      await h.add(add('b'));
      await h.del(del('a'));
      await h.del(del('b'));
      const err = (await h.add(add('c')).catch((e: unknown) => e)) as { code: string; message: string };
      expect(err).toMatchObject({ code: 'pool_empty' });
      const m =
        /^no free address: 2 released address\(es\) are cooling down \(IP_COOLDOWN_PERIOD=30s\), the first is free in (\d+)s; (.*)$/.exec(
          err.message,
        );
      expect(m, err.message).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThanOrEqual(29);
      expect(Number(m![1])).toBeLessThanOrEqual(30);
      expect(m![2]).toBe(meanwhile);
    },
  );

  it('says pool_empty, not exhausted, while the pool waits for EC2 to show an ENI', async () => {
    const { h } = setup({
      ips: [],
      status: {
        blocked: { reason: 'waiting for EC2 to confirm ENI(s) eni-2', permanent: false, retrySoon: true },
      },
    });
    await expect(h.add(add('a'))).rejects.toMatchObject({
      code: 'pool_empty',
      message: 'no free address yet: waiting for EC2 to confirm ENI(s) eni-2; retry shortly',
    });
  });

  it('serves releases before add is ready, and nothing once closed', async () => {
    const { h, saved } = setup();
    const a = await h.add(add('a'));
    h.setReady('ipamd is starting: filling the pool');
    await expect(h.add(add('b'))).rejects.toMatchObject({ code: 'not_ready' });
    expect((await h.del(del('a'))).address).toBe(a.address);
    expect(saved().allocations).toEqual([]);
    h.close('ipamd is shutting down');
    await expect(h.del(del('a'))).rejects.toMatchObject({
      code: 'not_ready',
      message: 'ipamd is shutting down',
    });
  });

  it('a pending DEL unwires the host while the address is still held, then releases it', async () => {
    const { ds, h, saved } = setup({ cooldownMs: 0 });
    const r = await h.add(add('gone'));
    const heldWhileUnwiring: (string | undefined)[] = [];
    const out = await h.releasePending(
      { network: 'aws-cni', containerId: 'gone', ifName: 'eth0' },
      Date.now() + 1000,
      async (owned) => {
        expect(owned).toEqual({ address: r.address, hostVethMac: r.hostVethMac });
        heldWhileUnwiring.push(ds.holderOf(owned.address)?.containerId);
      },
    );
    expect(heldWhileUnwiring).toEqual(['gone']);
    expect(out).toEqual({ address: r.address, hostVethMac: r.hostVethMac });
    expect(ds.holderOf(r.address)).toBeNull();
    expect(saved().allocations).toEqual([]);
  });

  it('a pending DEL yields to a DEL that released the address while it unwired', async () => {
    const { ds, h } = setup({ cooldownMs: 0 });
    const r = await h.add(add('gone'));
    const key = { network: 'aws-cni', containerId: 'gone', ifName: 'eth0' };
    // A DEL that arrives while the host is being unwired releases it first: nothing is released twice.
    const out = await h.releasePending(key, Date.now() + 1000, async () => {
      await h.del(del('gone'));
    });
    expect(out).toBeNull();
    expect(ds.holderOf(r.address)).toBeNull();
  });

  it('gc releases what the runtime no longer lists and persists it', async () => {
    const { h, saved } = setup();
    await h.add(add('a'));
    const b = await h.add(add('b'));
    const out = await h.gc({
      v: PROTOCOL_VERSION,
      op: 'gc',
      network: 'aws-cni',
      valid: [{ containerId: 'a', ifName: 'eth0' }],
    });
    expect(out.released).toEqual([
      { containerId: 'b', ifName: 'eth0', address: b.address, hostVethMac: b.hostVethMac },
    ]);
    expect(saved().allocations.map((a) => a.containerId)).toEqual(['a']);
  });

  it('gc refuses to release every attachment of the network unless forced', async () => {
    const { h, saved } = setup();
    await h.add(add('a'));
    await h.add(add('b'));
    const gc = { v: PROTOCOL_VERSION, op: 'gc' as const, network: 'aws-cni', valid: [] };
    await expect(h.gc(gc)).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringContaining('refusing to release all 2 attachment(s) of network "aws-cni"'),
    });
    expect(
      saved()
        .allocations.map((a) => a.containerId)
        .sort(),
    ).toEqual(['a', 'b']);
    expect((await h.gc({ ...gc, force: true })).released).toHaveLength(2);
    // Nothing left: an empty list releases nothing and is fine.
    expect((await h.gc(gc)).released).toEqual([]);
  });

  it('is not ready until told, and says why', async () => {
    const { h } = setup();
    h.setReady('ipamd is shutting down');
    await expect(h.add(add('a'))).rejects.toMatchObject({
      code: 'not_ready',
      message: 'ipamd is shutting down',
    });
    expect(await h.health()).toEqual({ ready: false, reason: 'ipamd is shutting down', freeAddresses: 2 });
  });
});
