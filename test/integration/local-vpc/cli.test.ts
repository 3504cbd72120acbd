/**
 * The `local-vpc` CLI (the built bundle): a person brings a two-instance VPC up and down with one
 * command each, and a crashed VPC is cleaned up from its prefix alone.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, netnsWithPrefix } from '../../../infra/local-vpc/fabric/cleanup.js';

const BUNDLE = join(import.meta.dirname, '../../../dist/local-vpc.mjs');

interface Status {
  pid: number;
  prefix: string;
  alive: boolean;
  namespaces: string[];
  instances: Array<{ id: string; netns: string; primaryIp: string }>;
}

let stateDir: string;
const prefixesSeen = new Set<string>();
const pidsSeen = new Set<number>();

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BUNDLE, ...args, '--state-dir', stateDir], (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function status(name: string): Promise<{ code: number; status: Status }> {
  const r = await cli('status', '--name', name, '--json');
  const s = JSON.parse(r.stdout) as Status;
  prefixesSeen.add(s.prefix);
  pidsSeen.add(s.pid);
  return { code: r.code, status: s };
}

function ping(ns: string, address: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, 'ping', '-n', '-c1', '-W1', address], (err) => resolve(!err));
  });
}

beforeAll(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run "npm run build" first`);
  stateDir = mkdtempSync(join(tmpdir(), 'local-vpc-cli-'));
});

afterAll(async () => {
  for (const pid of pidsSeen) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const prefix of prefixesSeen) await cleanupPrefix(prefix);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('local-vpc CLI', () => {
  it('up / status / down round trip with two instances', async () => {
    const name = `rt${process.pid.toString(36)}`;
    const up = await cli('up', '--instances', '2', '--name', name);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('ip netns exec');
    expect(up.stdout).toContain('http://169.254.169.253');

    const { code, status: s } = await status(name);
    expect(code).toBe(0);
    expect(s.alive).toBe(true);
    expect(s.instances).toHaveLength(2);
    expect(s.namespaces.sort()).toEqual(
      [`${s.prefix}-vpc`, `${s.prefix}-inet`, ...s.instances.map((i) => i.netns)].sort(),
    );
    expect(await ping(s.instances[0]!.netns, s.instances[1]!.primaryIp)).toBe(true);

    const again = await cli('up', '--name', name);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already up');

    const down = await cli('down', '--name', name);
    expect(down.code, down.stderr).toBe(0);
    expect(await netnsWithPrefix(s.prefix)).toEqual([]);
    expect(existsSync(join(stateDir, name))).toBe(false);
    expect((await cli('status', '--name', name)).code).toBe(1);
  });

  it('a VPC whose process was killed is reported and cleaned up by its prefix', async () => {
    const name = `cr${process.pid.toString(36)}`;
    const up = await cli('up', '--instances', '1', '--name', name);
    expect(up.code, up.stderr).toBe(0);
    const { status: before } = await status(name);
    process.kill(before.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));

    const { code, status: after } = await status(name);
    expect(code).toBe(1);
    expect(after.alive).toBe(false);
    expect(after.namespaces).toHaveLength(3); // the crash left them behind

    const cleanup = await cli('cleanup', '--prefix', before.prefix);
    expect(cleanup.code, cleanup.stderr).toBe(0);
    expect(cleanup.stdout).toContain('removed 3 namespaces');
    expect(await netnsWithPrefix(before.prefix)).toEqual([]);

    const down = await cli('down', '--name', name); // forgets the record
    expect(down.code, down.stderr).toBe(0);
    expect(existsSync(join(stateDir, name))).toBe(false);
  });

  it('rejects bad input with a specific message', async () => {
    const r = await cli('up', '--instances', 'many');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('expected a whole number');
    const t = await cli('up', '--instance-type', 'm5.bogus');
    expect(t.code).not.toBe(0);
    expect(t.stderr).toContain('unknown instance type "m5.bogus"');
    const p = await cli('cleanup', '--prefix', 'vpccni');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toContain('vpccni-<runid>');
  });
});
