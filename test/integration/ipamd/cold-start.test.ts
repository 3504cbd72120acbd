import { cpSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, IPAMD_BUNDLE, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd cold start', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('launch an m5.large, start ipamd: the primary ENI fills, a warm ENI follows the first pod', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node);
    await ipamd.waitServing();
    // WARM_ENI_TARGET=1: the primary ENI's 9 secondary IPs are the warm pool.
    expect(s.enisOf(node)).toHaveLength(1);
    expect(s.secondaryIpCount(node)).toBe(9);

    const first = await ipamd.add('pod-1');
    expect(first.ok).toBe(true);
    expect(first.result).toMatchObject({ deviceNumber: 0, routeTable: 254, mtu: 9001, vethPrefix: 'eni' });
    // One pod used: fewer than 9 ready, so a whole second ENI is attached.
    await eventually(
      () => ipamd.events().some((e) => e.msg === 'ENI attached and ready'),
      20_000,
      'second ENI',
    );
    expect(s.secondaryIpCount(node)).toBe(18);
    const eni1 = s.enisOf(node)[1]!;
    expect(eni1.attachment).toMatchObject({ deviceIndex: 1, deleteOnTermination: true });
    expect(eni1.tags.get('node.k8s.amazonaws.com/instance_id')).toBe(node.id);
    expect(eni1.tags.get('node.k8s.amazonaws.com/createdAt')).toMatch(/^\d{4}-/);
    expect(ipamd.checkpoint().allocations.map((a) => a.containerId)).toEqual(['pod-1']);
    // The CNI conflist is written once ipamd serves.
    const conf = JSON.parse(readFileSync(join(ipamd.dir, 'net.d', '10-aws.conflist'), 'utf8'));
    expect(conf.plugins).toEqual([
      {
        type: 'aws-cni',
        name: 'aws-cni',
        cniVersion: '1.0.0',
        ipamdSocket: ipamd.socketPath,
        pluginLogFile: join(ipamd.dir, 'log', 'plugin.log'),
        pluginLogLevel: 'debug',
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ]);
    // Introspection and metrics answer inside the instance.
    const enis = await s.vpc.exec(node, 'curl', ['-s', 'http://127.0.0.1:61679/v1/enis']);
    // The reference's shape: network card -> ENIs by id.
    expect(Object.keys(JSON.parse(enis.stdout)['0'].ENIs)).toHaveLength(2);
    const metrics = await s.vpc.exec(node, 'curl', ['-s', 'http://127.0.0.1:61678/metrics']);
    expect(metrics.stdout).toMatch(/awscni_eni_allocated 2/);
    expect(metrics.stdout).toMatch(/awscni_assigned_ip_addresses 1/);
    expect(metrics.stdout).toMatch(/awscni_ec2api_req_count\{fn="CreateNetworkInterface"\} 1/);
  });

  it('installed alone (no node_modules), with the instance role from IMDS for credentials', async () => {
    // As install.sh lays it out: the entry point, its on-demand chunks and the addons beside it.
    const lib = mkdtempSync(join(tmpdir(), 'vpccni-ipamd-lib-'));
    s.dirs.push(lib);
    for (const f of readdirSync(dirname(IPAMD_BUNDLE))) {
      if (f === 'ipamd.mjs' || f === 'ipamd-chunks' || f.endsWith('.node')) {
        cpSync(join(dirname(IPAMD_BUNDLE), f), join(lib, f), { recursive: true });
      }
    }
    const node = await s.launch('m5.large');
    // Empty values: the SDK's environment provider skips them and the default chain reaches IMDS.
    const ipamd = s.startIpamd(
      node,
      { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', NODE_PATH: '' },
      undefined,
      join(lib, 'ipamd.mjs'),
    );
    await ipamd.waitServing();
    const calls = s.vpc.callLog.entries({ caller: `AKID${node.id}` });
    expect(calls.map((c) => c.action)).toContain('DescribeNetworkInterfaces');
    // A pod on a secondary ENI: ipamd programmed its host networking through the addons it found.
    expect((await ipamd.add('pod-role')).ok).toBe(true);
    await eventually(() => s.enisOf(node).length === 2, 20_000, 'a second ENI');
    await eventually(
      () => ipamd.events().some((e) => e.msg === 'ENI attached and ready'),
      20_000,
      'second ENI ready',
    );
  });
});
