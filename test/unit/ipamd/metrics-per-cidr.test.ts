import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckpointData } from '../../../ipamd/checkpoint.js';
import { Datastore, type EniInfo } from '../../../ipamd/datastore/datastore.js';
import { restoreCheckpoint } from '../../../ipamd/datastore/restore.js';
import { assignedIpPerCidr, registry, trackAssignedPerCidr } from '../../../ipamd/metrics.js';

const eni = (id: string, dev: number, over: Partial<EniInfo> = {}): EniInfo => ({
  id,
  mac: `0a:00:00:00:00:0${dev}`,
  deviceNumber: dev,
  subnetId: 'subnet-1',
  subnetCidr: '10.0.0.0/16',
  primaryIp: `10.0.${dev}.10`,
  attachmentId: null,
  isPrimary: dev === 0,
  forPods: true,
  ...over,
});

const pod = (containerId: string) => ({ network: 'aws-cni', containerId, ifName: 'eth0' });

/** The metric as Prometheus would scrape it: cidr -> value. */
async function scrape(): Promise<Record<string, number>> {
  const { values } = await assignedIpPerCidr.get();
  return Object.fromEntries(values.map((v) => [String(v.labels.cidr), v.value]));
}

afterEach(() => trackAssignedPerCidr(null));

describe('awscni_assigned_ip_per_cidr', () => {
  it('follows assignments and releases of secondary IPs, one /32 series per address', async () => {
    const ds = new Datastore(30_000);
    trackAssignedPerCidr(() => ds.assignedPerCidr());
    ds.addEni(eni('eni-0', 0));
    ds.addIps('eni-0', ['10.0.0.11', '10.0.0.12']);
    expect(await scrape()).toEqual({ '10.0.0.11/32': 0, '10.0.0.12/32': 0 });

    const a = ds.assign(pod('a'))!;
    expect(await scrape()).toEqual({ '10.0.0.11/32': 0, '10.0.0.12/32': 0, [`${a.address}/32`]: 1 });

    ds.release(pod('a'));
    expect(await scrape()).toEqual({ '10.0.0.11/32': 0, '10.0.0.12/32': 0 });
  });

  it('counts every assigned address of a prefix under the prefix', async () => {
    const ds = new Datastore(0);
    trackAssignedPerCidr(() => ds.assignedPerCidr());
    ds.addEni(eni('eni-1', 1));
    ds.addPrefixes('eni-1', ['10.0.1.16/28', '10.0.1.32/28']);
    for (const c of ['a', 'b', 'c']) ds.assign(pod(c));
    const got = await scrape();
    // Pods pack into one prefix so the other stays free for release.
    expect(Object.values(got).sort()).toEqual([0, 3]);
    expect(Object.keys(got).sort()).toEqual(['10.0.1.16/28', '10.0.1.32/28']);
  });

  it('drops the series of CIDRs that leave the pool (released IPs, prefixes, deleted ENIs)', async () => {
    const ds = new Datastore(0);
    trackAssignedPerCidr(() => ds.assignedPerCidr());
    ds.addEni(eni('eni-0', 0));
    ds.addIps('eni-0', ['10.0.0.11', '10.0.0.12']);
    ds.addEni(eni('eni-1', 1));
    ds.addPrefixes('eni-1', ['10.0.1.16/28']);
    expect(Object.keys(await scrape())).toHaveLength(3);

    ds.removeIps('eni-0', ['10.0.0.12']);
    ds.removeEni('eni-1');
    expect(await scrape()).toEqual({ '10.0.0.11/32': 0 });
    expect(await registry.metrics()).not.toMatch(/10\.0\.1\.16\/28/);
  });

  it('leaves out the addresses of an ENI that is not for pods (custom networking primary)', async () => {
    const ds = new Datastore(0);
    trackAssignedPerCidr(() => ds.assignedPerCidr());
    ds.addEni(eni('eni-0', 0, { forPods: false }));
    ds.addIps('eni-0', ['10.0.0.11']);
    expect(await scrape()).toEqual({});
  });

  it('shows the assignments replayed from a checkpoint after a restart', async () => {
    const ds = new Datastore(30_000);
    trackAssignedPerCidr(() => ds.assignedPerCidr());
    ds.addEni(eni('eni-1', 1));
    ds.addIps('eni-1', ['10.0.1.11', '10.0.1.12']);
    ds.addPrefixes('eni-1', ['10.0.1.32/28']);
    const data: CheckpointData = {
      version: 1,
      allocations: ['10.0.1.12', '10.0.1.33', '10.0.1.34'].map((address, i) => ({
        ...pod(`c${i}`),
        address,
        eniId: 'eni-1',
        assignedAt: '2026-01-01T00:00:00.000Z',
      })),
      cooldowns: [],
    };
    restoreCheckpoint(ds, data, pino({ level: 'silent' }));
    expect(await scrape()).toEqual({ '10.0.1.11/32': 0, '10.0.1.12/32': 1, '10.0.1.32/28': 2 });
    const text = await registry.metrics();
    expect(text).toContain('awscni_assigned_ip_per_cidr{cidr="10.0.1.32/28"} 2');
  });

  it('has no series before a pool is bound', async () => {
    expect(await scrape()).toEqual({});
  });
});
