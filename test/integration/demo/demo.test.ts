/**
 * The main job end to end, as a person runs it: the built dist/demo.mjs with a small pod count.
 * It must report every pod, pass every check, exit 0, and leave no namespace or ipamd behind; on
 * SIGINT it tears down the same way; --keep leaves it running until `down`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupPrefix, netnsWithPrefix } from '../../../infra/local-vpc/fabric/cleanup.js';

const DEMO = resolve('dist/demo.mjs');
const missing = ['dist/demo.mjs', 'dist/ipamd.mjs', 'dist/aws-cni.mjs'].find((f) => !existsSync(f));
const stateDir = mkdtempSync(join(tmpdir(), 'demo-it-state-'));
const prefixes = new Set<string>();

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run>; output: () => string } {
  const child = spawn(process.execPath, [DEMO, ...args], {
    env: { ...process.env, VPCCNI_DEMO_STATE_DIR: stateDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const collect = (d: Buffer) => {
    out += d.toString();
    for (const m of out.matchAll(/\((vpccni-[a-z0-9]+)\)/g)) prefixes.add(m[1]!);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const done = new Promise<Run>((r) => child.on('close', (code, signal) => r({ code, signal, out })));
  return { child, done, output: () => out };
}

function prefixOf(out: string): string {
  const m = /\((vpccni-[a-z0-9]+)\)/.exec(out);
  if (!m) throw new Error(`no VPC prefix in the output:\n${out}`);
  return m[1]!;
}

function ipamdPids(out: string): number[] {
  const m = /ipamd ready \(pids ([\d, ]+)\)/.exec(out);
  if (!m) throw new Error(`no ipamd pids in the output:\n${out}`);
  return m[1]!.split(',').map((s) => Number(s.trim()));
}

function workDirOf(out: string): string {
  const m = /work directory (\S+)/.exec(out);
  if (!m) throw new Error(`no work directory in the output:\n${out}`);
  return m[1]!;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

afterAll(async () => {
  // Whatever a failed assertion left behind goes by prefix.
  for (const p of prefixes) await cleanupPrefix(p).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
});

describe.skipIf(missing)('the main job (dist/demo.mjs)', () => {
  it('starts pods on two nodes, passes every check, reports, and cleans up everything', async () => {
    const { done } = start(['--pods', '4', '--concurrency', '2']);
    const run = await done;
    expect(run.out).toMatch(/PASS: 4\/4 pods started, 12\/12 connectivity checks passed/);
    expect(run.code, run.out).toBe(0);
    // The placement table: a row per pod, with instance, ENI, device, address, pod and node.
    const rows = run.out
      .split('\n')
      .filter((l) => /^i-[0-9a-f]+\s+eni-[0-9a-f]+\s+eth\d/.test(l) && l.includes('default/demo-'));
    expect(rows).toHaveLength(4);
    for (const r of rows)
      expect(r).toMatch(/eth0 \(primary\)\s+10\.0\.\d+\.\d+\s+default\/demo-0\d\s+ip-10-0-\d-\d+$/);
    // The live status line while the pool fills (one line a second when not on a terminal).
    expect(run.out).toMatch(/^\[\s*\d+\.\ds\] ipamd warming up \| node-1 eth0\S* \d+ IPs \| node-2 eth0/m);
    expect(run.out).toMatch(/EC2 ACTION\s+CALLS\s+node-1\s+node-2/);
    expect(run.out).toMatch(/^CreateNetworkInterface\s+\d+/m);
    expect(run.out).toMatch(/^total\s+\d+/m);
    const prefix = prefixOf(run.out);
    expect(await netnsWithPrefix(prefix)).toEqual([]);
    for (const pid of ipamdPids(run.out)) expect(alive(pid), `ipamd ${pid} still running`).toBe(false);
    expect(existsSync(workDirOf(run.out))).toBe(false);
  });

  it('tears everything down on SIGINT while pods are starting', async () => {
    const { child, done, output } = start(['--pods', '6']);
    await until('pods to start', () => output().includes('through the CNI chain'), 90_000);
    const prefix = prefixOf(output());
    const pids = ipamdPids(output());
    child.kill('SIGINT');
    const run = await done;
    expect(run.code, run.out).toBe(130);
    expect(run.out).toMatch(/SIGINT: tearing down/);
    expect(await netnsWithPrefix(prefix)).toEqual([]);
    for (const pid of pids) expect(alive(pid), `ipamd ${pid} still running`).toBe(false);
    expect(existsSync(workDirOf(run.out))).toBe(false);
  });

  it('still cleans up when the reader of its output goes away (| head)', async () => {
    const { child, done, output } = start(['--pods', '2', '--instances', '1']);
    await until('the instance line', () => /node-1: i-/.test(output()), 60_000);
    const prefix = prefixOf(output());
    child.stdout!.destroy();
    const run = await done;
    expect(run.code).toBe(141);
    expect(await netnsWithPrefix(prefix)).toEqual([]);
  });

  it('--keep leaves the pods reachable until `down` removes them', async () => {
    // 11 pods on one m5.large: 9 fill the primary ENI, 2 land on eth1.
    const up = await start(['--keep', '--instances', '1', '--pods', '11', '--name', 'it']).done;
    expect(up.code, up.out).toBe(0);
    expect(up.out).toMatch(/Kept running as "it"/);
    expect(up.out).toMatch(/^i-\S+\s+eni-\S+\s+eth1\s+10\.0\.1\.\d+\s+default\/demo-\d+/m);
    const prefix = prefixOf(up.out);
    const namespaces = await netnsWithPrefix(prefix);
    expect(namespaces).toContain(`${prefix}-pod-01`);
    // Still wired after the foreground exited: a packet from one kept pod to the other.
    const peer = /ping -c1 (\d+\.\d+\.\d+\.\d+)/.exec(up.out)![1]!;
    const ping = spawn('ip', ['netns', 'exec', `${prefix}-pod-01`, 'ping', '-n', '-c1', '-W2', peer]);
    expect(await new Promise((r) => ping.on('close', r))).toBe(0);

    const down = await start(['down', '--name', 'it']).done;
    expect(down.code, down.out).toBe(0);
    expect(down.out).toMatch(/demo "it" is down/);
    expect(await netnsWithPrefix(prefix)).toEqual([]);
    expect((await start(['down', '--name', 'it']).done).code).toBe(1);
  });

  it('rejects bad options before building anything', async () => {
    const run = await start(['--instances', '99']).done;
    expect(run.code).toBe(2);
    expect(run.out).toMatch(/--instances: expected a whole number from 1 to 8/);
    expect(run.out).not.toMatch(/Creating a local VPC/);
  });
});
