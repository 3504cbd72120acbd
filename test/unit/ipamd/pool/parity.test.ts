// Pool-side meanings of the reference's settings: which attached ENIs ipamd manages
// (MANAGE_UNTAGGED_ENI, no_manage), a cordoned node holding its ENIs (AWS_MANAGE_ENIS_NON_SCHEDULABLE),
// and the EC2 HTTP timeout (HTTP_TIMEOUT) reaching each request.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createEc2Transport } from '../../../../ipamd/aws/ec2.js';
import { fromReply } from '../../../../ipamd/aws/ec2-wire.js';
import { Datastore } from '../../../../ipamd/datastore/datastore.js';
import type { PoolExecutor } from '../../../../ipamd/pool/executor.js';
import { PoolManager } from '../../../../ipamd/pool/manager.js';
import { isManaged } from '../../../../ipamd/pool/ownership.js';
import type { SubnetPicker } from '../../../../ipamd/pool/subnets.js';

const log = pino({ level: 'silent' });
const MINE = { 'node.k8s.amazonaws.com/instance_id': 'i-0mine' };

describe('which attached ENIs ipamd manages', () => {
  const rule = (manageUntagged: boolean) => ({ instanceId: 'i-0mine', manageUntagged });
  it.each([
    ['the primary, always', {}, true, false, true],
    ['the primary even tagged no_manage', { 'node.k8s.amazonaws.com/no_manage': 'true' }, true, false, true],
    ['ours (instance_id tag)', MINE, false, false, true],
    ['no_manage=true', { ...MINE, 'node.k8s.amazonaws.com/no_manage': 'true' }, false, true, false],
    ['no_manage with another value', { 'node.k8s.amazonaws.com/no_manage': 'false' }, false, false, true],
    ['untagged, MANAGE_UNTAGGED_ENI=true', {}, false, true, true],
    ['untagged, MANAGE_UNTAGGED_ENI=false', {}, false, false, false],
    ["another node's", { 'node.k8s.amazonaws.com/instance_id': 'i-0other' }, false, false, false],
  ] as const)('%s', (_what, tags, isPrimary, manageUntagged, managed) => {
    expect(isManaged({ tags, isPrimary }, rule(manageUntagged))).toBe(managed);
  });
});

describe('a held pool (cordoned node, AWS_MANAGE_ENIS_NON_SCHEDULABLE=false)', () => {
  function pool() {
    const ds = new Datastore(0);
    ds.addEni({
      id: 'eni-0',
      mac: '02:00:00:00:00:00',
      deviceNumber: 0,
      subnetId: 'subnet-a',
      subnetCidr: '10.0.1.0/24',
      primaryIp: '10.0.1.10',
      attachmentId: null,
      isPrimary: true,
      forPods: true,
    });
    const ran: string[] = [];
    const executor = { run: async (a: { kind: string }) => void ran.push(a.kind) } as unknown as PoolExecutor;
    const subnets = {
      refreshIfStale: async () => undefined,
      pick: () => ({ subnetId: 'subnet-a', securityGroups: [] }),
      blockedReason: () => null,
      isBlocked: () => false,
    } as unknown as SubnetPicker;
    const m = new PoolManager({
      ds,
      executor,
      subnets,
      log,
      mode: 'ip',
      targets: { warmEni: 0, warmIp: 3, minIp: 0, warmPrefix: 0 },
      limits: { maxEnis: 3, slotsPerEni: 10, maxPods: 110 },
      shrinkIntervalMs: 0,
      disableProvisioning: false,
      unmanagedDeviceNumbers: () => [],
      maxStepsPerTick: 1,
    });
    return { m, ran };
  }

  it('adds no address while held and says why; grows again once released', async () => {
    const { m, ran } = pool();
    m.holdEniChanges('the node is cordoned');
    expect(m.changesHeld).toBe('the node is cordoned');
    await m.tick();
    expect(ran).toEqual([]);
    expect(m.status.blocked).toEqual({ reason: 'the node is cordoned', permanent: false });
    m.holdEniChanges(null);
    await m.tick();
    expect(ran).toEqual(['assign']);
  });
});

describe('HTTP_TIMEOUT', () => {
  let server: Server | null = null;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = null;
  });

  it('bounds each EC2 request by the configured time', async () => {
    server = createServer(() => undefined); // never answers
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const t = createEc2Transport('us-west-2', `http://127.0.0.1:${port}`, false, { timeoutMs: 300 });
    process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTEST';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'secret';
    const started = Date.now();
    await expect(t.send('DescribeNetworkInterfaces', {})).rejects.toThrow(/no reply within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('subnet tags over the Query protocol', () => {
  it("reads a subnet's tagSet as the SDK's Tags (the discovery rules need them; an ENI's stays TagSet)", () => {
    const tag = { item: { key: 'kubernetes.io/role/cni', value: '1' } };
    const subnets = fromReply('DescribeSubnets', {
      DescribeSubnetsResponse: {
        subnetSet: { item: { subnetId: 'subnet-1', availableIpAddressCount: '5', tagSet: tag } },
      },
    });
    expect(subnets.Subnets?.[0]).toMatchObject({
      SubnetId: 'subnet-1',
      AvailableIpAddressCount: 5,
      Tags: [{ Key: 'kubernetes.io/role/cni', Value: '1' }],
    });
    const enis = fromReply('DescribeNetworkInterfaces', {
      DescribeNetworkInterfacesResponse: {
        networkInterfaceSet: { item: { networkInterfaceId: 'eni-1', tagSet: tag } },
      },
    });
    expect(enis.NetworkInterfaces?.[0]?.TagSet).toEqual([{ Key: 'kubernetes.io/role/cni', Value: '1' }]);
  });
});
