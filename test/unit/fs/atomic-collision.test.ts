/**
 * writeFileAtomic when its temp name is known in advance (randomness fixed here): a symlink planted
 * at exactly that name makes the write fail (O_EXCL|O_NOFOLLOW) instead of writing through it.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

vi.mock('node:crypto', async (importOriginal) => ({
  ...(await importOriginal<typeof import('node:crypto')>()),
  randomBytes: (n: number) => Buffer.alloc(n, 0xab),
}));

const { tempPathFor, writeFileAtomic } = await import('../../../lib/fs/atomic.js');

const dir = mkdtempSync(join(tmpdir(), 'ipamd-atomic-collide-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic with a predictable temp name', () => {
  it('fails with EEXIST on a planted symlink and leaves its target and the file alone', async () => {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'victim\n');
    const path = join(dir, 'ipam.json');
    writeFileSync(path, 'old\n');
    const planted = tempPathFor(path);
    expect(planted).toBe(join(dir, `.ipam.json.${'ab'.repeat(12)}.tmp`));
    symlinkSync(victim, planted);
    await expect(writeFileAtomic(path, 'new\n', 0o600)).rejects.toThrow(/EEXIST/);
    expect(readFileSync(victim, 'utf8')).toBe('victim\n');
    expect(readFileSync(path, 'utf8')).toBe('old\n');
  });
});
