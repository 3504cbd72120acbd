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

describe('restoreCheckpoint', () => {
  it('replays entries, dropping unknown addresses, duplicates and pods whose netns is gone', () => {
    const ds = new Datastore(30_000, () => 1000);
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
    const data: CheckpointData = {
      version: 1,
      allocations: [
        alloc('kept', '10.0.1.11'),
        alloc('unknown-address', '10.0.9.9'),
        alloc('same-address', '10.0.1.11'),
        { ...alloc('netns-gone', '10.0.1.12', '/var/run/netns/gone'), hostVethMac: '02:00:00:00:00:12' },
        alloc('kept', '10.0.1.13'),
      ],
      cooldowns: [{ address: '10.0.1.14', until: 5000 }],
    };
    const r = restoreCheckpoint(ds, data, pino({ level: 'silent' }), (p) => p.endsWith('/gone'));
    expect(r.restored).toBe(1);
    expect(r.dropped.map((d) => [d.containerId, d.reason])).toEqual([
      ['unknown-address', 'the address no longer belongs to any ENI of this node'],
      ['same-address', 'another checkpoint entry already holds the address'],
      ['netns-gone', "the pod's network namespace /var/run/netns/gone is gone"],
      ['kept', 'duplicate entry for the same attachment'],
    ]);
    // Only the pod that is gone has host routing left for the daemon to remove.
    expect(r.unwire).toEqual([{ address: '10.0.1.12', hostVethMac: '02:00:00:00:00:12' }]);
    expect(
      ds.lookup({ network: 'aws-cni', containerId: 'kept', ifName: 'eth0' })!.assignment.assignedAt,
    ).toBe('2026-01-01T00:00:00.000Z');
    expect(ds.stats()).toEqual({ total: 4, assigned: 1, cooling: 1, ready: 2 });
  });
});
