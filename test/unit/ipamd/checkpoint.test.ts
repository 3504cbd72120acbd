import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Checkpoint, type CheckpointData } from '../../../ipamd/checkpoint.js';

function data(n: number): CheckpointData {
  return {
    version: 1,
    allocations: Array.from({ length: n }, (_, i) => ({
      network: 'aws-cni',
      containerId: `c${i}`,
      ifName: 'eth0',
      address: `10.0.0.${i + 2}`,
      eniId: 'eni-0',
      assignedAt: '2026-01-01T00:00:00.000Z',
    })),
    cooldowns: [{ address: '10.0.0.99', until: 123 }],
  };
}

describe('Checkpoint', () => {
  it('writes atomically with mode 0600 and reads back what it wrote', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipamd-ckpt-'));
    const path = join(dir, 'sub', 'ipam.json');
    let state = data(2);
    const cp = new Checkpoint(path, () => state);
    expect(await cp.load()).toBeNull();
    await cp.persist();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await cp.load()).toEqual(state);
    state = data(1);
    await cp.persist();
    expect(JSON.parse(readFileSync(path, 'utf8')).allocations).toHaveLength(1);
    expect(readdirSync(join(dir, 'sub'))).toEqual(['ipam.json']);
  });

  it('coalesces concurrent persists and includes every change made before the call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipamd-ckpt-'));
    const path = join(dir, 'ipam.json');
    let n = 0;
    const cp = new Checkpoint(path, () => data(n));
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 50; i++) {
      n++;
      waits.push(cp.persist());
    }
    await Promise.all(waits);
    expect(JSON.parse(readFileSync(path, 'utf8')).allocations).toHaveLength(50);
    expect(cp.writeCount).toBeLessThanOrEqual(3);
  });

  it('refuses a corrupt or newer checkpoint with a message that says what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipamd-ckpt-'));
    const path = join(dir, 'ipam.json');
    const cp = new Checkpoint(path, () => data(0));
    writeFileSync(path, '{"version":1,"allocations":[{"network":"x"}]}');
    await expect(cp.load()).rejects.toThrow(
      /allocations\[0\]\.containerId is missing.*remove it only after every pod/,
    );
    writeFileSync(path, '{"version":7,"allocations":[]}');
    await expect(cp.load()).rejects.toThrow(/written by a newer ipamd/);
    writeFileSync(path, '{trunc');
    await expect(cp.load()).rejects.toThrow(/invalid JSON/);
  });
});
