import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, eventually, Scenario } from './fixture.js';

describe.skipIf(bundleMissing())('ipamd warm targets', () => {
  let s: Scenario;
  beforeAll(async () => {
    s = await Scenario.create();
  });
  afterAll(async () => {
    await s?.close();
  });

  it.concurrent('WARM_IP_TARGET=3 MINIMUM_IP_TARGET=5: five IPs at start, topped up as pods arrive', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { WARM_IP_TARGET: '3', MINIMUM_IP_TARGET: '5' });
    await ipamd.waitServing();
    await eventually(() => s.secondaryIpCount(node) === 5, 10_000, '5 IPs');
    for (const p of ['a', 'b', 'c']) expect((await ipamd.add(p)).ok).toBe(true);
    // 3 assigned of 5: 2 ready < WARM_IP_TARGET 3, so exactly one more.
    await eventually(() => s.secondaryIpCount(node) === 6, 10_000, '6 IPs');
    expect(s.enisOf(node)).toHaveLength(1);
  });

  it.concurrent('prefix delegation keeps one free /28 and hands out addresses from it', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { ENABLE_PREFIX_DELEGATION: 'true' });
    await ipamd.waitServing();
    const primary = () => s.enisOf(node)[0]!;
    await eventually(() => primary().prefixes.length === 1, 10_000, 'one prefix');
    const r = await ipamd.add('pd-1');
    expect(r.ok).toBe(true);
    const [base] = primary().prefixes[0]!.split('/');
    const baseLast = Number(base!.split('.')[3]);
    const addrLast = Number(String(r.result!.address).split('.')[3]);
    expect(addrLast - baseLast).toBeGreaterThanOrEqual(0);
    expect(addrLast - baseLast).toBeLessThan(16);
    // 15 ready < 16: a second prefix.
    await eventually(() => primary().prefixes.length === 2, 10_000, 'second prefix');
    expect(s.enisOf(node)).toHaveLength(1);
  });

  it.concurrent('WARM_PREFIX_TARGET=2 starts with two prefixes', async () => {
    const node = await s.launch('m5.large');
    const ipamd = s.startIpamd(node, { ENABLE_PREFIX_DELEGATION: 'true', WARM_PREFIX_TARGET: '2' });
    await ipamd.waitServing();
    await eventually(() => s.enisOf(node)[0]!.prefixes.length === 2, 10_000, 'two prefixes');
  });

  it.concurrent('refuses prefix delegation on a Xen type with a clear message', async () => {
    const node = await s.launch('t2.medium');
    const ipamd = s.startIpamd(node, { ENABLE_PREFIX_DELEGATION: 'true' });
    expect(await ipamd.kill('SIGCONT')).toBe(1);
    expect(ipamd.logs.join('\n')).toMatch(/needs a Nitro instance type; t2.medium runs on xen/);
  });

  it.concurrent('custom networking puts pod ENIs in the ENIConfig subnet and leaves the primary ENI alone', async () => {
    const node = await s.launch('m5.large');
    const sg = s.vpc.state.createSecurityGroup({ vpcId: s.vpc.vpcId });
    const podSubnet = s.vpc.subnetIds[1]!;
    const ipamd = s.startIpamd(node, {
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      ENI_CONFIG_SUBNET: podSubnet,
      ENI_CONFIG_SECURITY_GROUPS: sg,
    });
    await ipamd.waitServing();
    const enis = s.enisOf(node);
    expect(enis).toHaveLength(2);
    expect(enis[0]!.privateIps).toHaveLength(1);
    expect(enis[1]!.subnetId).toBe(podSubnet);
    expect(enis[1]!.groups).toEqual([sg]);
    const r = await ipamd.add('cn-1');
    expect(r.result).toMatchObject({ deviceNumber: 1, routeTable: 2, eniId: enis[1]!.id });
  });
});
