/**
 * Start-up under trouble, as a DaemonSet lives it: a transient EC2 outage at start must leave ipamd
 * running and not ready (the readiness probe says why) until EC2 recovers, never exit; and releases
 * (DEL after a failed ADD: no prevResult, so only ipamd can answer it) are served while the pool
 * cannot yet hand out an address.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario, sleep } from './fixture.js';

const PROBE = resolve('dist/ipamd-probe.mjs');
const SHIM = resolve('dist/aws-cni');

function runProbe(socket: string): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [PROBE, '--socket', socket], (err, stdout, stderr) =>
      done({ code: err ? Number(err.code) : 0, out: `${stdout}${stderr}`.trim() }),
    );
  });
}

// Faults apply to the whole emulator: these scenarios run one at a time.
describe.skipIf(bundleMissing())('ipamd start-up under EC2 faults', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    s?.vpc.faults.reset();
    await s?.close();
  });

  it('a 500/503 burst on DescribeNetworkInterfaces longer than the SDK retries: not ready with the reason, then serves', async () => {
    const node = await s.launch('m5.large');
    s.vpc.faults.injectError({ action: 'DescribeNetworkInterfaces', httpStatus: 500, count: 2 });
    s.vpc.faults.injectError({ action: 'DescribeNetworkInterfaces', httpStatus: 503, probability: 1 });
    let ipamd: ReturnType<Scenario['startIpamd']>;
    try {
      ipamd = s.startIpamd(node, { IPAMD_EC2_MAX_ATTEMPTS: '3' });
      // The SDK's attempts are used up more than once; the daemon keeps retrying.
      await eventually(
        () => {
          if (!ipamd.running) throw new Error(`ipamd exited:\n${ipamd.logs.slice(-5).join('\n')}`);
          return (
            ipamd.events().filter((e) => e.msg === 'start-up step failed; retrying' && e.stage === 'discover')
              .length >= 2
          );
        },
        30_000,
        'two failed discovery rounds',
      );
      expect(ipamd.running).toBe(true);
      const probe = await runProbe(ipamd.socketPath);
      expect(probe.code).toBe(1);
      expect(probe.out).toMatch(/^ipamd not ready: .*DescribeNetworkInterfaces/);
      // A pod arriving now is told to try again (CNI code 11), not refused for good.
      const early = await ipamd.add('early');
      expect(early.error?.code).toBe('not_ready');
    } finally {
      s.vpc.faults.reset();
    }
    await ipamd.waitServing(30_000);
    expect((await runProbe(ipamd.socketPath)).out).toMatch(/^ipamd ready/);
    expect((await ipamd.add('after')).ok).toBe(true);
  });

  it('WARM_IP_TARGET=2: a DEL without prevResult is served while the restarted pool cannot get an address', async () => {
    const node = await s.launch('m5.large');
    const env = { WARM_IP_TARGET: '2', MINIMUM_IP_TARGET: '4', MAX_PODS: '6' };
    const first = s.startIpamd(node, env);
    await first.waitServing();
    // Every address the node may have is in use: a restart finds none free.
    const pods = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
    for (const p of pods) expect((await first.addAsRuntime(p)).ok).toBe(true);
    expect(await first.kill('SIGKILL')).toBeNull();

    // EC2 refuses new addresses for a while after the restart.
    s.vpc.faults.injectError({ action: 'AssignPrivateIpAddresses', httpStatus: 503, probability: 1 });
    try {
      const second = s.startIpamd(node, { ...env, MAX_PODS: '8' }, first.dir);
      await eventually(
        () => second.events().some((e) => e.msg === 'checkpoint replayed'),
        30_000,
        'the checkpoint replayed',
      );
      await sleep(500);
      expect(second.events().some((e) => e.msg === 'ipamd serving')).toBe(false);
      // The runtime's DEL of a sandbox whose ADD failed: ipamd releases it now, not after the pool fills.
      const del = await second.del('p1');
      expect(del.ok, JSON.stringify(del.error)).toBe(true);
      expect(del.result?.address).toMatch(/^10\.0\./);
      expect(second.checkpoint().allocations.map((a) => a.containerId)).not.toContain('p1');
      // The same through the shim the runtime executes: no netns left, no prevResult.
      const viaShim = await s.vpc.exec(node, SHIM, [], {
        input: JSON.stringify({
          cniVersion: '1.0.0',
          name: 'aws-cni',
          type: 'aws-cni',
          ipamdSocket: second.socketPath,
        }),
        env: {
          PATH: process.env.PATH,
          CNI_COMMAND: 'DEL',
          CNI_CONTAINERID: 'p2',
          CNI_NETNS: '',
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/usr/lib/cni',
        },
      });
      expect(viaShim.code, viaShim.stdout + viaShim.stderr).toBe(0);
      expect(second.checkpoint().allocations.map((a) => a.containerId)).not.toContain('p2');
      // A repeated DEL is success too; an ADD is told to try again.
      expect((await second.del('p1')).ok).toBe(true);
      expect((await second.add('p7')).error?.code).toBe('not_ready');
    } finally {
      s.vpc.faults.reset();
    }
  });
});
