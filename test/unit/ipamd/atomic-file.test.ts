/**
 * ipamd's file writes under attack: a symlink planted where the old code put its temp files
 * (`<file>.tmp-<pid>`) must change nothing, modes are exact whatever the umask, no temp file is left,
 * and ipamd refuses a run directory others could write to.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../../ipamd/checkpoint.js';
import { writeConflist } from '../../../ipamd/daemon.js';
import { ensureRunDirs, RunDirError } from '../../../ipamd/run-dir.js';
import { tempPathFor } from '../../../lib/fs/atomic.js';

const root = mkdtempSync(join(tmpdir(), 'ipamd-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const d = join(root, `d${n++}`);
  mkdirSync(d, { mode: 0o755 });
  return d;
};

const VICTIM_TEXT = 'root:x:0:0:root:/root:/bin/bash\n';
/** A file elsewhere that a planted symlink points at. */
function victim(): string {
  const path = join(freshDir(), 'victim');
  writeFileSync(path, VICTIM_TEXT, { mode: 0o644 });
  return path;
}

function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  return fn().finally(() => process.umask(old));
}

const snapshot = () => ({
  version: 1,
  allocations: [
    {
      network: 'aws-cni',
      containerId: 'c1',
      ifName: 'eth0',
      netns: '/var/run/netns/secret-pod',
      address: '10.0.0.5',
      eniId: 'eni-1',
      assignedAt: '2026-01-01T00:00:00.000Z',
    },
  ],
  cooldowns: [],
});

describe('checkpoint writes', () => {
  it('a symlink planted at ipam.json.tmp-<pid> leaves its target untouched', async () => {
    const dir = freshDir();
    const target = victim();
    const path = join(dir, 'ipam.json');
    symlinkSync(target, `${path}.tmp-${process.pid}`);
    await new Checkpoint(path, snapshot).persist();
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expect(JSON.parse(readFileSync(path, 'utf8')).allocations[0].containerId).toBe('c1');
  });

  it('replaces a symlink planted at the checkpoint itself instead of writing through it', async () => {
    const dir = freshDir();
    const target = victim();
    const path = join(dir, 'ipam.json');
    symlinkSync(target, path);
    await new Checkpoint(path, snapshot).persist();
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
  });

  it('is mode 0600 whatever the umask, and leaves no temp file', async () => {
    const dir = freshDir();
    const path = join(dir, 'ipam.json');
    await withUmask(0, () => new Checkpoint(path, snapshot).persist());
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['ipam.json']);
  });
});

describe('conflist writes', () => {
  it('a symlink planted at 10-aws.conflist.tmp-<pid> leaves its target untouched', async () => {
    const dir = freshDir();
    const target = victim();
    symlinkSync(target, join(dir, `10-aws.conflist.tmp-${process.pid}`));
    const path = await writeConflist(dir, '/var/run/aws-node/ipamd.sock');
    expect(readFileSync(target, 'utf8')).toBe(VICTIM_TEXT);
    expect(JSON.parse(readFileSync(path, 'utf8')).plugins[0].ipamdSocket).toBe(
      '/var/run/aws-node/ipamd.sock',
    );
  });

  it('is mode 0644 whatever the umask', async () => {
    const dir = freshDir();
    const path = await withUmask(0o077, () => writeConflist(dir, '/s.sock'));
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir).sort()).toEqual(['10-aws.conflist']);
  });
});

describe('writeFileAtomic', () => {
  it('uses a fresh unpredictable temp name each time, hidden and not a CNI config name', () => {
    const a = tempPathFor('/etc/cni/net.d/10-aws.conflist');
    const b = tempPathFor('/etc/cni/net.d/10-aws.conflist');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^\/etc\/cni\/net\.d\/\.10-aws\.conflist\.[0-9a-f]{24}\.tmp$/);
  });
});

describe('ensureRunDirs', () => {
  it('creates a missing run directory 0755 and accepts it', async () => {
    const dir = join(freshDir(), 'aws-node');
    await withUmask(0, () => ensureRunDirs([dir]));
    expect(statSync(dir).mode & 0o7777).toBe(0o755);
  });

  it.each([0o775, 0o757, 0o777, 0o1777])('refuses a run directory with mode %s', async (mode) => {
    const dir = freshDir();
    chmodSync(dir, mode);
    const err = await ensureRunDirs([dir]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunDirError);
    expect((err as Error).message).toMatch(
      /refusing to start: run directory .* is writable by group or others/,
    );
    expect((err as Error).message).toContain(`chmod go-w ${dir}`);
  });

  it('refuses a run directory owned by another user', async () => {
    const dir = freshDir();
    const uid = process.geteuid?.() ?? 0;
    const err = await ensureRunDirs([dir], uid + 1).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(new RegExp(`owned by uid ${uid}, not by uid ${uid + 1}`));
  });

  it.runIf(process.geteuid?.() === 0)('refuses a directory owned by someone else (as root)', async () => {
    const dir = freshDir();
    chownSync(dir, 65534, 65534);
    await expect(ensureRunDirs([dir])).rejects.toThrow(/owned by uid 65534/);
  });

  it('refuses a run directory under a group- or world-writable parent, allows a sticky one', async () => {
    const parent = freshDir();
    const dir = join(parent, 'run');
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(parent, 0o777);
    await expect(ensureRunDirs([dir])).rejects.toThrow(/above run directory .* not sticky/);
    chmodSync(parent, 0o1777);
    await expect(ensureRunDirs([dir])).resolves.toBeUndefined();
  });

  it('follows a symlinked run directory to the real one and checks that', async () => {
    const real = freshDir();
    chmodSync(real, 0o777);
    const link = join(freshDir(), 'link');
    symlinkSync(real, link);
    await expect(ensureRunDirs([link])).rejects.toThrow(new RegExp(`run directory ${real} is writable`));
  });

  it('lists the problems of every directory at once', async () => {
    const a = freshDir();
    const b = freshDir();
    chmodSync(a, 0o777);
    chmodSync(b, 0o775);
    const err = (await ensureRunDirs([a, b]).catch((e: unknown) => e)) as RunDirError;
    expect(err.problems).toHaveLength(2);
  });
});
