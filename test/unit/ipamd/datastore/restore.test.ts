import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { CheckpointData } from '../../../../ipamd/checkpoint.js';
import { Datastore } from '../../../../ipamd/datastore/datastore.js';
import { restoreCheckpoint } from '../../../../ipamd/datastore/restore.js';

const alloc = (containerId: string, address: string, netns?: string) => ({
  network: 'aws-cni',
  containerId,
  ifName: 'eth0',
  address,
  eniId: 'eni-1',
  assignedAt: '2026-01-01T00:00:00.000Z',
  ...(netns ? { netns } : {}),
});

function store(now = 1000) {
  const ds = new Datastore(30_000, () => now);
  ds.addEni({
    id: 'eni-1',
    mac: '0a:00:00:00:00:02',
    deviceNumber: 1,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.1.0/24',
    primaryIp: '10.0.1.10',
    attachmentId: 'a',
    isPrimary: false,
    forPods: true,
  });
  ds.addIps('eni-1', ['10.0.1.11', '10.0.1.12', '10.0.1.13', '10.0.1.14']);
  return ds;
}

const silent = pino({ level: 'silent' });

describe('restoreCheckpoint', () => {
  it('replays entries, dropping unknown ENIs, duplicates and pods whose netns is gone', () => {
    const ds = store();
    const data: CheckpointData = {
      version: 1,
      allocations: [
        alloc('kept', '10.0.1.11'),
        { ...alloc('unknown-eni', '10.0.9.9'), eniId: 'eni-gone' },
        alloc('same-address', '10.0.1.11'),
        { ...alloc('netns-gone', '10.0.1.12', '/var/run/netns/gone'), hostVethMac: '02:00:00:00:00:12' },
        alloc('kept', '10.0.1.13'),
      ],
      cooldowns: [{ address: '10.0.1.14', until: 5000 }],
    };
    const r = restoreCheckpoint(ds, data, silent, (p) => p.endsWith('/gone'));
    expect(r.restored).toBe(1);
    expect(r.dropped.map((d) => [d.containerId, d.reason])).toEqual([
      ['unknown-eni', 'the address no longer belongs to any ENI of this node'],
      ['same-address', 'another checkpoint entry already holds the address'],
      ['netns-gone', "the pod's network namespace /var/run/netns/gone is gone"],
      ['kept', 'duplicate entry for the same attachment'],
    ]);
    // Only the pod that is gone has host routing left for the daemon to remove.
    expect(r.unwire).toEqual([{ address: '10.0.1.12', hostVethMac: '02:00:00:00:00:12' }]);
    expect(
      ds.lookup({ network: 'aws-cni', containerId: 'kept', ifName: 'eth0' })!.assignment.assignedAt,
    ).toBe('2026-01-01T00:00:00.000Z');
    // The gone pod's address cools down as after a DEL: peers elsewhere may still send to it.
    expect(ds.stats()).toEqual({ total: 4, assigned: 1, cooling: 2, ready: 1 });
    expect(ds.cooldowns()).toContainEqual({ address: '10.0.1.12', until: 31_000 });
  });

  it('keeps an entry whose address its ENI does not show (yet), held for the pod and for nobody else', () => {
    const ds = store();
    const r = restoreCheckpoint(
      ds,
      { version: 1, allocations: [alloc('lagging', '10.0.1.20')], cooldowns: [] },
      silent,
      () => false,
    );
    expect(r).toMatchObject({ restored: 1, held: 1, dropped: [] });
    const key = { network: 'aws-cni', containerId: 'lagging', ifName: 'eth0' };
    expect(ds.lookup(key)?.address).toBe('10.0.1.20');
    // EC2 never shows it: the pod's own release removes it instead of freeing it for another pod.
    expect(ds.release(key)?.address).toBe('10.0.1.20');
    expect(ds.hasAddress('10.0.1.20')).toBe(false);
    expect(ds.stats()).toEqual({ total: 4, assigned: 0, cooling: 0, ready: 4 });
  });

  it('an entry held unbacked becomes an ordinary one when EC2 shows the address after all', () => {
    const ds = store();
    restoreCheckpoint(ds, { version: 1, allocations: [alloc('p', '10.0.1.20')], cooldowns: [] }, silent);
    ds.addIps('eni-1', ['10.0.1.20']);
    ds.release({ network: 'aws-cni', containerId: 'p', ifName: 'eth0' });
    expect(ds.stats()).toEqual({ total: 5, assigned: 0, cooling: 1, ready: 4 });
  });
});
