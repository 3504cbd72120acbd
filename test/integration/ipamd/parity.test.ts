/**
 * The real dist/ipamd.mjs with the AWS VPC CNI's files and modes (issue 12): its log in a file (0600,
 * the unsupported-settings warning in it), plugin logs of forwarded calls that name a FIFO, a planted
 * symlink or a path outside the log directory (ipamd keeps serving, nothing outside is written),
 * MANAGE_UNTAGGED_ENI=false, and ENABLE_IMDS_ONLY_MODE (not one EC2 call).
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, rawRequest, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd: the reference files and modes', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('logs to its file, keeps serving through hostile plugin logs, leaves untagged ENIs alone when told', async () => {
    const node = await s.launch('m5.large');
    // An ENI attached behind ipamd's back with no tag of ours: MANAGE_UNTAGGED_ENI=false leaves it.
    const subnetId = s.enisOf(node)[0]!.subnetId;
    const untagged = s.vpc.state.createNetworkInterface({ subnetId, secondaryCount: 1 });
    s.vpc.state.attachNetworkInterface({ eniId: untagged.id, instanceId: node.id, deviceIndex: 1 });
    await s.vpc.settled();
    const dir = mkdtempSync(join(tmpdir(), 'ipamd-it-'));
    s.dirs.push(dir);
    const logFile = join(dir, 'logs', 'ipamd.log');
    const daemon = s.startIpamd(
      node,
      {
        // Warn: the fixture waits for the 'ipamd serving' info line only on stderr.
        AWS_VPC_K8S_CNI_LOGLEVEL: 'warn',
        AWS_VPC_K8S_CNI_LOG_FILE: logFile,
        ENABLE_POD_ENI: 'true',
        MANAGE_UNTAGGED_ENI: 'false',
      },
      dir,
    );
    await daemon.waitServing();
    expect(statSync(logFile).mode & 0o777).toBe(0o600);
    const lines = () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines().find((l) => String(l.msg).includes('does not implement'))).toMatchObject({
      settings: ['ENABLE_POD_ENI'],
    });
    // The untagged ENI is not ipamd's: /v1/enis (the reference's shape) lists only the primary.
    const enis = await s.vpc.exec(node, 'curl', ['-s', 'http://127.0.0.1:61679/v1/enis']);
    expect(Object.keys(JSON.parse(enis.stdout)['0'].ENIs)).toEqual([
      s.enisOf(node).find((e) => e.attachment?.deviceIndex === 0)!.id,
    ]);

    // Forwarded CNI calls whose netconf names hostile plugin logs.
    const logDir = join(daemon.dir, 'log');
    mkdirSync(logDir, { recursive: true });
    const fifo = join(logDir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    const precious = join(daemon.dir, 'precious');
    writeFileSync(precious, 'keep\n');
    symlinkSync(precious, join(logDir, 'link.log'));
    const outside = join(daemon.dir, 'outside.log');
    for (const pluginLogFile of [fifo, join(logDir, 'link.log'), outside]) {
      const stdin = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'aws-cni',
        type: 'aws-cni',
        pluginLogFile,
        pluginLogLevel: 'debug',
      });
      const env = {
        CNI_COMMAND: 'DEL',
        CNI_CONTAINERID: 'c-hostile',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
      };
      const reply = await rawRequest(
        daemon.socketPath,
        JSON.stringify({ v: 1, op: 'cni', env, stdin }),
        5_000,
      );
      expect(reply.ok, pluginLogFile).toBe(true);
      // Still serving: the socket and introspection answer at once.
      expect((await daemon.request({ op: 'health' })).ok).toBe(true);
    }
    const health = await s.vpc.exec(node, 'curl', [
      '-s',
      '-m',
      '2',
      'http://127.0.0.1:61679/v1/ipamd-env-settings',
    ]);
    expect(JSON.parse(health.stdout)).toMatchObject({ WARM_ENI_TARGET: 1 });
    expect(readFileSync(precious, 'utf8')).toBe('keep\n');
    expect(existsSync(outside)).toBe(false);
    await eventually(
      () =>
        lines().some(
          (l) => l.msg === `plugin log refused: ipamd writes plugin logs only directly in ${logDir}`,
        ),
      5_000,
      'the refused plugin log named in ipamd log',
    );
  });

  it('ENABLE_IMDS_ONLY_MODE: serves the addresses the instance has, with not one EC2 call', async () => {
    const node = await s.launch('m5.large');
    const primary = s.enisOf(node)[0]!;
    s.vpc.state.assignPrivateIpAddresses({ eniId: primary.id, count: 3 });
    await s.vpc.settled();
    const caller = `AKID${node.id}`;
    const ipamd = s.startIpamd(node, { ENABLE_IMDS_ONLY_MODE: 'true' });
    await ipamd.waitServing();
    expect((await ipamd.add('pod-1')).ok).toBe(true);
    expect((await ipamd.add('pod-2')).ok).toBe(true);
    expect(s.vpc.callLog.count(undefined, caller)).toBe(0);
    // Nothing grows either: three addresses, three pods at most.
    expect((await ipamd.add('pod-3')).ok).toBe(true);
    const fourth = await ipamd.add('pod-4');
    expect(fourth.ok).toBe(false);
    expect(s.vpc.callLog.count(undefined, caller)).toBe(0);
  });
});
