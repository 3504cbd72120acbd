/**
 * What a pod can reach on its node, with real packets in the local VPC: a pod wired by the real
 * plugin behind an instance running the real ipamd.
 * - IMDS: unreachable with ipamd's block rule (the default), reachable with it off and hop limit 2,
 *   unreachable with hop limit 1 even with the rule off; the node itself always reaches it.
 * - ipamd's metrics: on loopback by default (no pod reaches them); bound to the node's address for
 *   scraping, other hosts reach them and pods on the node still do not.
 * - 5,000 idle connections to the metrics listener pin at most its cap of descriptors in ipamd, and a
 *   scrape still works during the flood.
 * - ipamd refuses to start when its run directory is world-writable.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeInstancesCommand,
  EC2Client,
  ModifyInstanceMetadataOptionsCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { HTTP_LIMITS } from '../../../ipamd/server/http.js';
import { Netns, PLUGIN, pluginReply, podCniEnv, requireBuilt } from '../cni/harness.js';
import { bundleMissing, eventually, type Ipamd, Scenario, sleep } from './fixture.js';

const METRICS_PORT = 61678;
const FLOOD = 5_000;

let s: Scenario;
let node: Instance;
let other: Instance;
let ipamd: Ipamd;
let dir: string;
let pod: Netns;
let ec2: EC2Client;

async function cniAdd(name: string, ns: Netns): Promise<void> {
  const conf = { cniVersion: '1.1.0', name: 'aws-cni', type: 'aws-cni', ipamdSocket: ipamd.socketPath };
  for (const deadline = Date.now() + 20_000; ; ) {
    const r = pluginReply(
      await s.vpc.exec(node, process.execPath, [PLUGIN], {
        input: JSON.stringify(conf),
        env: podCniEnv('ADD', { name, containerId: `ctr-${name}`, ns }),
      }),
    );
    if (r.code === 0) return;
    if (r.code !== 11 || Date.now() > deadline) throw new Error(`ADD ${name} failed: ${r.raw}`);
    await sleep(200);
  }
}

/** IMDSv2 as a client does it (token, then a GET); the instance id on success, null on no answer. */
async function imdsFrom(where: {
  run: (cmd: string, args: string[]) => Promise<{ code: number; stdout: string }>;
}) {
  const token = await where.run('curl', [
    '-s',
    '-f',
    '-m',
    '2',
    '-X',
    'PUT',
    '-H',
    'X-aws-ec2-metadata-token-ttl-seconds: 60',
    'http://169.254.169.254/latest/api/token',
  ]);
  if (token.code !== 0 || token.stdout === '') return null;
  const id = await where.run('curl', [
    '-s',
    '-f',
    '-m',
    '2',
    '-H',
    `X-aws-ec2-metadata-token: ${token.stdout}`,
    'http://169.254.169.254/latest/meta-data/instance-id',
  ]);
  return id.code === 0 ? id.stdout : null;
}

const inPod = { run: (cmd: string, args: string[]) => pod.run(cmd, args) };
const onNode = (target: Instance) => ({
  run: (cmd: string, args: string[]) => s.vpc.exec(target, cmd, args),
});

async function setHopLimit(limit: number): Promise<void> {
  await ec2.send(
    new ModifyInstanceMetadataOptionsCommand({ InstanceId: node.id, HttpPutResponseHopLimit: limit }),
  );
  await s.vpc.settled();
}

async function restartIpamd(env: Record<string, string>): Promise<void> {
  await ipamd.kill('SIGTERM');
  ipamd = s.startIpamd(node, env, dir);
  await ipamd.waitServing();
}

const filterRules = async () =>
  (await s.vpc.exec(node, 'iptables-save', ['-t', 'filter'])).stdout
    .split('\n')
    .filter((l) => l.includes('AWS'));

const curlCode = async (target: Instance | Netns, url: string) => {
  const args = ['-s', '-o', '/dev/null', '-m', '2', url];
  return (target instanceof Netns ? await target.run('curl', args) : await s.vpc.exec(target, 'curl', args))
    .code;
};

describe.skipIf(bundleMissing())('what a pod can reach on its node', () => {
  beforeAll(async () => {
    requireBuilt();
    s = await Scenario.create();
    [node, other] = await Promise.all([s.launch('m5.large'), s.launch('m5.large')]);
    ec2 = new EC2Client({
      endpoint: s.vpc.ec2Url,
      region: 'us-west-2',
      credentials: { accessKeyId: 'AKIDPODISOLATION', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    dir = mkdtempSync(join(tmpdir(), 'ipamd-isolation-'));
    s.dirs.push(dir);
    ipamd = s.startIpamd(node, {}, dir);
    await ipamd.waitServing();
    pod = Netns.create(`${s.vpc.prefix}-pod1`);
    await cniAdd('pod1', pod);
  });

  afterAll(async () => {
    ec2?.destroy();
    pod?.delete();
    await s?.close();
  });

  it("EC2's default hop limit is 1 (DescribeInstances shows it)", async () => {
    const d = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [node.id] }));
    expect(d.Reservations?.[0]?.Instances?.[0]?.MetadataOptions?.HttpPutResponseHopLimit).toBe(1);
  });

  it('by default ipamd drops pod traffic to IMDS: no answer even with hop limit 2; the node gets one', async () => {
    await setHopLimit(2);
    expect(await filterRules()).toContain(
      '-A FORWARD -d 169.254.169.254/32 -i eni+ -m comment --comment "AWS, block pods from IMDS" -j DROP',
    );
    expect(await imdsFrom(onNode(node))).toBe(node.id);
    expect(await imdsFrom(inPod)).toBeNull();
  });

  it('by default no pod reaches the metrics (loopback); the node does', async () => {
    expect(await curlCode(node, `http://127.0.0.1:${METRICS_PORT}/metrics`)).toBe(0);
    expect(await curlCode(pod, `http://${node.primaryIp}:${METRICS_PORT}/metrics`)).not.toBe(0);
    expect(await curlCode(other, `http://${node.primaryIp}:${METRICS_PORT}/metrics`)).not.toBe(0);
  });

  it(`${FLOOD} idle connections hold at most the cap of descriptors in ipamd, and a scrape still works`, async () => {
    const pid = ipamd.proc.pid!;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('ipamd.mjs');
    const fds = () => readdirSync(`/proc/${pid}/fd`).length;
    const before = fds();
    const flood = s.vpc.runIn(
      node,
      process.execPath,
      ['-e', FLOOD_CLIENT, String(METRICS_PORT), String(FLOOD)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    try {
      const report = await new Promise<{ opened: number; failed: number }>((resolve, reject) => {
        let out = '';
        flood.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(JSON.parse(out));
        });
        flood.once('exit', (code) => reject(new Error(`flood client exited (${code}) before reporting`)));
      });
      // Every connection was accepted (none refused); ipamd closed all but its cap.
      expect(report.opened + report.failed).toBe(FLOOD);
      expect(report.opened).toBeGreaterThan(FLOOD / 2);
      const during = fds();
      expect(during - before).toBeLessThanOrEqual(HTTP_LIMITS.maxConnections + 8);
      const scrape = await s.vpc.exec(node, 'curl', [
        '-s',
        '-m',
        '5',
        `http://127.0.0.1:${METRICS_PORT}/metrics`,
      ]);
      expect(scrape.code).toBe(0);
      expect(scrape.stdout).toMatch(/^awscni_total_ip_addresses \d+/m);
    } finally {
      flood.stdin!.end();
      flood.kill('SIGKILL');
    }
    await eventually(() => fds() <= before + 4, 20_000, 'descriptors back near the baseline');
  });

  it('metrics bound to the node address: other hosts scrape them, pods on the node still cannot', async () => {
    await restartIpamd({ METRICS_BIND_ADDRESS: `${node.primaryIp}:${METRICS_PORT}` });
    const url = `http://${node.primaryIp}:${METRICS_PORT}/metrics`;
    expect(await filterRules()).toContain(
      `-A INPUT -i eni+ -p tcp -m tcp --dport ${METRICS_PORT} -m comment --comment "AWS, ipamd listener closed to pods" -j DROP`,
    );
    expect(await curlCode(node, url)).toBe(0);
    expect(await curlCode(other, url)).toBe(0);
    expect(await curlCode(pod, url)).not.toBe(0);
  });

  it('with IPAMD_BLOCK_POD_IMDS=false and hop limit 2 the pod reaches IMDS (as itself: the node)', async () => {
    await restartIpamd({ IPAMD_BLOCK_POD_IMDS: 'false' });
    expect((await filterRules()).filter((l) => l.includes('IMDS'))).toEqual([]);
    expect(await imdsFrom(inPod)).toBe(node.id);
  });

  it('with hop limit 1 the pod gets no token even with the rule off; the node still does', async () => {
    await setHopLimit(1);
    expect(await imdsFrom(inPod)).toBeNull();
    expect(await imdsFrom(onNode(node))).toBe(node.id);
    await setHopLimit(2);
    expect(await imdsFrom(inPod)).toBe(node.id);
  });

  it('refuses to start when its run directory is world-writable', async () => {
    const bad = mkdtempSync(join(tmpdir(), 'ipamd-baddir-'));
    s.dirs.push(bad);
    chmodSync(bad, 0o777);
    // On the other instance, which runs no ipamd: if the check were missing this one would start.
    const refused = s.startIpamd(other, {}, bad);
    await eventually(() => !refused.running, 20_000, 'ipamd to exit');
    expect(refused.logs.join('\n')).toMatch(
      /refusing to start: run directory .* is writable by group or others/,
    );
  });
});

/**
 * Opens `count` connections to 127.0.0.1:`port`, 100 at a time, and keeps open what the server keeps;
 * prints {opened, failed} once all were tried, then holds them until stdin closes.
 */
const FLOOD_CLIENT = `
const net = require('node:net');
const [port, count] = process.argv.slice(1).map(Number);
let opened = 0, failed = 0;
const socks = [];
const one = () => new Promise((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port });
  socks.push(s);
  s.once('connect', () => { opened++; resolve(); });
  s.once('error', () => { failed++; resolve(); });
});
(async () => {
  for (let i = 0; i < count; i += 100) await Promise.all(Array.from({ length: Math.min(100, count - i) }, one));
  setTimeout(() => process.stdout.write(JSON.stringify({ opened, failed }) + '\\n'), 300);
})();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;
