/**
 * The local VPC's fabric, proved with real packets: routing between instances, the
 * source/destination check, secondary ENIs and address moves, IMDS and EC2 from inside an
 * instance, the internet host, and cleanup.
 */

import { execFileSync } from 'node:child_process';
import {
  AssignPrivateIpAddressesCommand,
  AttachNetworkInterfaceCommand,
  CreateNetworkInterfaceCommand,
  DescribeNetworkInterfacesCommand,
  DetachNetworkInterfaceCommand,
  EC2Client,
  UnassignPrivateIpAddressesCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listNetns } from '../../../infra/local-vpc/fabric/cleanup.js';
import { createVpc, type Instance, type LocalVpc } from '../../../infra/local-vpc/index.js';

let vpc: LocalVpc;
let a: Instance; // subnet 0
let b: Instance; // subnet 1
let c: Instance; // subnet 0, same as a
let ec2: EC2Client;

/** A free address of subnet `subnetId` that EC2 has not given to anyone. */
function unassignedAddress(subnetCidrPrefix: string): string {
  for (let host = 200; host < 250; host++) {
    const ip = `${subnetCidrPrefix}.${host}`;
    if (!vpc.state.findEniByAddress(ip)) return ip;
  }
  throw new Error('no free address');
}

async function linkOf(
  ns: string,
  name: string,
): Promise<{ address: string; operstate: string; mtu: number }> {
  const r = await vpc.exec(ns, 'ip', ['-j', 'link', 'show', name]);
  if (r.code !== 0) throw new Error(`no link ${name} in ${ns}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as Array<{ address: string; operstate: string; mtu: number }>)[0]!;
}

async function routerDevFor(address: string): Promise<string> {
  const r = await vpc.exec(vpc.routerNetns, 'ip', ['-j', 'route', 'get', address]);
  return (JSON.parse(r.stdout) as Array<{ dev: string }>)[0]!.dev;
}

async function sh(target: Instance | string, script: string): Promise<string> {
  const r = await vpc.exec(target, 'sh', ['-ec', script]);
  if (r.code !== 0) throw new Error(`sh -ec '${script}' failed: ${r.stderr}`);
  return r.stdout;
}

/** IMDSv2 GET from inside the instance, as ipamd does it. */
function imdsGet(target: Instance, path: string): Promise<string> {
  return sh(
    target,
    'T=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token); ' +
      `curl -sf -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/${path}`,
  );
}

/** The router's count of packets dropped by reverse-path filtering (TcpExt IPReversePathFilter). */
async function rpFilterDrops(): Promise<number> {
  const lines = (await sh(vpc.routerNetns, 'cat /proc/net/netstat')).split('\n');
  const names = lines.find((l) => l.startsWith('TcpExt:'))!.split(/\s+/);
  const values = lines.filter((l) => l.startsWith('TcpExt:'))[1]!.split(/\s+/);
  return Number(values[names.indexOf('IPReversePathFilter')]);
}

/** Polls `check` until it returns a value (not undefined), as a runtime waits on EC2 and IMDS. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/**
 * Runs an EC2 call on a just-created ENI, retrying InvalidNetworkInterfaceID.NotFound with backoff:
 * EC2 documents that such a call may fail until the new id propagates (eventual consistency).
 */
async function onNewEni<T>(call: () => Promise<T>): Promise<T> {
  let result: T | undefined;
  await waitFor('the new ENI to propagate', async () => {
    try {
      result = await call();
      return true;
    } catch (err) {
      if ((err as Error).name === 'InvalidNetworkInterfaceID.NotFound') return undefined;
      throw err;
    }
  });
  return result as T;
}

/** Waits until EC2 reports the ENI's attachment in `status` (or no attachment for 'available'). */
function eniStatus(eniId: string, status: 'attached' | 'available'): Promise<true> {
  return waitFor(`${eniId} ${status}`, async () => {
    const e = (await ec2.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [eniId] })))
      .NetworkInterfaces![0]!;
    const now = e.Attachment?.Status ?? e.Status;
    return now === status || (status === 'available' && e.Status === 'available') ? true : undefined;
  });
}

beforeAll(async () => {
  vpc = await createVpc();
  a = await vpc.launchInstance({ instanceType: 'm5.large', subnet: 0 });
  b = await vpc.launchInstance({ instanceType: 'm5.large', subnet: 1 });
  c = await vpc.launchInstance({ instanceType: 'm5.large', subnet: 0 });
  ec2 = new EC2Client({
    endpoint: vpc.ec2Url,
    region: 'us-west-2',
    credentials: { accessKeyId: 'AKIDFABRICTEST', secretAccessKey: 'x' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  ec2?.destroy();
  await vpc?.destroy();
});

describe('instances', () => {
  it('boot with the primary ENI configured as DHCP would: MAC, address, MTU, default route', async () => {
    const eth0 = await linkOf(a.netns, 'eth0');
    expect(eth0.address).toBe(a.primaryMac);
    expect(eth0.operstate).toBe('UP');
    expect(eth0.mtu).toBe(9001);
    const addrs = await sh(a, 'ip -4 -o addr show dev eth0');
    expect(addrs).toContain(`${a.primaryIp}/24`);
    expect(await sh(a, 'ip route show default')).toContain('via 10.0.1.1 dev eth0');
  });

  it('reach each other across subnets and within one (proxy ARP)', async () => {
    expect(a.subnetId).not.toBe(b.subnetId);
    expect(await vpc.ping(a, b.primaryIp)).toBe(true);
    expect(await vpc.ping(b, a.primaryIp)).toBe(true);
    expect(await vpc.ping(a, c.primaryIp)).toBe(true);
  });
});

describe('the root namespace', () => {
  it('gains no link, address or route into the fabric', () => {
    const routes = execFileSync('ip', ['-4', 'route', 'show', 'table', 'all']).toString();
    const addrs = execFileSync('ip', ['-4', '-o', 'addr', 'show']).toString();
    for (const fabricNet of ['10.0.1.', '10.0.2.', '198.51.100.', '169.254.169.25']) {
      expect(routes).not.toContain(fabricNet);
      expect(addrs).not.toContain(fabricNet);
    }
    const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{
      ifname: string;
    }>;
    expect(links.map((l) => l.ifname).filter((n) => /^(ve\d+|inet0)$/.test(n))).toEqual([]);
  });
});

describe('source/destination check', () => {
  it('drops a source the ENI does not own and delivers it once EC2 assigns it', async () => {
    const spoofed = unassignedAddress('10.0.1');
    await sh(a, `ip addr add ${spoofed}/32 dev eth0`);
    const dropsBefore = await rpFilterDrops();
    expect(await vpc.ping(a, b.primaryIp, { source: spoofed })).toBe(false);
    expect(await rpFilterDrops()).toBeGreaterThan(dropsBefore); // dropped by the router's check

    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: a.primaryEniId,
        PrivateIpAddresses: [spoofed],
      }),
    );
    await vpc.settled();
    expect(await vpc.ping(a, b.primaryIp, { source: spoofed })).toBe(true);

    // Owned by another instance's ENI is no better than owned by nobody.
    const cs = unassignedAddress('10.0.1');
    await ec2.send(
      new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: c.primaryEniId, PrivateIpAddresses: [cs] }),
    );
    await vpc.settled();
    await sh(a, `ip addr add ${cs}/32 dev eth0`);
    expect(await vpc.ping(a, b.primaryIp, { source: cs })).toBe(false);
    await sh(a, `ip addr del ${cs}/32 dev eth0`);
  });
});

describe('a pod behind a node', () => {
  it('receives packets for its address although the node does not answer ARP for it', async () => {
    // As the CNI wires a pod: the address lives in the pod's namespace, the node only routes it.
    const podIp = unassignedAddress('10.0.1');
    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: a.primaryEniId,
        PrivateIpAddresses: [podIp],
      }),
    );
    await vpc.settled();
    const pod = `${vpc.prefix}-pod1`;
    execFileSync('ip', ['netns', 'add', pod]);
    await sh(
      a,
      [
        `ip link add vpod1 type veth peer name eth0 netns ${pod}`,
        'ip link set vpod1 up',
        'sysctl -qw net.ipv4.conf.vpod1.proxy_arp=1',
        `ip route add ${podIp}/32 dev vpod1`,
      ].join('; '),
    );
    await sh(
      pod,
      [
        'ip link set lo up',
        `ip addr add ${podIp}/32 dev eth0`,
        'ip link set eth0 up',
        'ip route add 169.254.1.1 dev eth0',
        'ip route add default via 169.254.1.1 dev eth0',
      ].join('; '),
    );
    expect(await vpc.ping(b, podIp)).toBe(true);
    expect(await vpc.ping(pod, b.primaryIp)).toBe(true);
    // The router delivered to the ENI's MAC; it never had to resolve the pod's address.
    const neigh = await sh(vpc.routerNetns, `ip neigh show ${podIp}`);
    expect(neigh.trim()).toBe('');
  });
});

describe('delegated prefixes', () => {
  it('delivers every address of an assigned /28 to the ENI that owns it', async () => {
    const out = await ec2.send(
      new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: c.primaryEniId, Ipv4PrefixCount: 1 }),
    );
    const prefix = out.AssignedIpv4Prefixes![0]!.Ipv4Prefix!;
    await vpc.settled();
    const base = prefix.split('/')[0]!.split('.').map(Number);
    const first = `${base.slice(0, 3).join('.')}.${base[3]!}`;
    const last = `${base.slice(0, 3).join('.')}.${base[3]! + 15}`;
    await sh(c, `ip addr add ${first}/32 dev eth0; ip addr add ${last}/32 dev eth0`);
    expect(await vpc.ping(b, first)).toBe(true);
    expect(await vpc.ping(b, last)).toBe(true);
    expect(await vpc.ping(c, b.primaryIp, { source: last })).toBe(true);
  });
});

describe('a second ENI', () => {
  it('appears with its MAC, unconfigured; its address is delivered there and follows reassignment', async () => {
    const created = await ec2.send(
      new CreateNetworkInterfaceCommand({ SubnetId: a.subnetId, SecondaryPrivateIpAddressCount: 1 }),
    );
    const eni = created.NetworkInterface!;
    const secondary = eni.PrivateIpAddresses!.find((p) => !p.Primary)!.PrivateIpAddress!;
    const attached = await onNewEni(() =>
      ec2.send(
        new AttachNetworkInterfaceCommand({
          NetworkInterfaceId: eni.NetworkInterfaceId,
          InstanceId: a.id,
          DeviceIndex: 1,
        }),
      ),
    );
    // The attach takes a moment ('attaching'); the link appears once it is 'attached'.
    await eniStatus(eni.NetworkInterfaceId!, 'attached');
    await vpc.settled();

    const eth1 = await linkOf(a.netns, 'eth1');
    expect(eth1.address).toBe(eni.MacAddress);
    expect(eth1.operstate).toBe('DOWN');
    expect(eth1.mtu).toBe(9001);
    expect(await sh(a, 'ip -4 -o addr show dev eth1')).toBe('');
    // IMDS lists the same MACs the kernel shows, which is how ipamd pairs ENIs with links (once IMDS,
    // which lags EC2, has published it).
    const macs = await waitFor('IMDS to list the new MAC', async () => {
      const listed = (await imdsGet(a, 'network/interfaces/macs/'))
        .split('\n')
        .map((m) => m.replace(/\/$/, ''));
      return listed.includes(eni.MacAddress!) ? listed : undefined;
    });
    expect(macs.sort()).toEqual([a.primaryMac, eni.MacAddress].sort());
    expect(await imdsGet(a, `network/interfaces/macs/${eni.MacAddress}/device-number`)).toBe('1');

    // Configure it the way ipamd does for pods on a secondary ENI: replies leave through eth1.
    await sh(
      a,
      [
        'ip link set eth1 up',
        `ip addr add ${secondary}/32 dev eth1`,
        'ip route add 10.0.1.1 dev eth1 scope link table 101',
        'ip route add default via 10.0.1.1 dev eth1 table 101',
        `ip rule add from ${secondary} table 101 priority 100`,
      ].join('; '),
    );
    expect(await routerDevFor(secondary)).toBe(vpc.routerLinkOf(eni.NetworkInterfaceId!));
    expect(await vpc.ping(b, secondary)).toBe(true);

    // Unassigned: the router no longer knows where it lives.
    await ec2.send(
      new UnassignPrivateIpAddressesCommand({
        NetworkInterfaceId: eni.NetworkInterfaceId,
        PrivateIpAddresses: [secondary],
      }),
    );
    await vpc.settled();
    expect(await vpc.ping(b, secondary)).toBe(false);

    // Reassigned to the primary ENI: the route moves, and replies must now leave through eth0.
    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: a.primaryEniId,
        PrivateIpAddresses: [secondary],
      }),
    );
    await vpc.settled();
    expect(await routerDevFor(secondary)).toBe(vpc.routerLinkOf(a.primaryEniId));
    expect(await vpc.ping(b, secondary)).toBe(false); // still answered through eth1: dropped
    await sh(a, `ip rule del from ${secondary} table 101 priority 100`);
    expect(await vpc.ping(b, secondary)).toBe(true);

    await ec2.send(new DetachNetworkInterfaceCommand({ AttachmentId: attached.AttachmentId }));
    await eniStatus(eni.NetworkInterfaceId!, 'available'); // 'detaching' for a while first
    await vpc.settled();
    expect((await vpc.exec(a, 'ip', ['link', 'show', 'eth1'])).code).not.toBe(0);
  });
});

describe('emulators from inside an instance', () => {
  it('IMDS at 169.254.169.254 answers each instance with its own identity (IMDSv2)', async () => {
    expect(await imdsGet(a, 'instance-id')).toBe(a.id);
    expect(await imdsGet(b, 'instance-id')).toBe(b.id);
    expect(await imdsGet(b, 'local-ipv4')).toBe(b.primaryIp);
    expect(await imdsGet(b, 'mac')).toBe(b.primaryMac);
  });

  it('IMDS on loopback answers as the instance whose port was dialled', async () => {
    const token = await fetch(`${b.imdsLoopbackUrl}/latest/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
    }).then((r) => r.text());
    const id = await fetch(`${b.imdsLoopbackUrl}/latest/meta-data/instance-id`, {
      headers: { 'x-aws-ec2-metadata-token': token },
    }).then((r) => r.text());
    expect(id).toBe(b.id);
  });

  it('the EC2 endpoint serves the real SDK at http://169.254.169.253, configured by awsEnv', async () => {
    // No endpoint or credentials in code: the instance's awsEnv supplies them, as ipamd gets them.
    const script = [
      "import { EC2Client, DescribeInstancesCommand } from '@aws-sdk/client-ec2';",
      'const ec2 = new EC2Client({ maxAttempts: 1 });',
      `const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ['${b.id}'] }));`,
      'console.log(out.Reservations[0].Instances[0].PrivateIpAddress);',
    ].join('\n');
    const r = await vpc.exec(a, process.execPath, ['--input-type=module', '-e', script], {
      timeoutMs: 20_000,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...a.awsEnv },
    });
    expect(r.stdout.trim(), r.stderr).toBe(b.primaryIp);
    expect(vpc.callLog.summary().byCaller[a.awsEnv['AWS_ACCESS_KEY_ID']!]).toEqual({ DescribeInstances: 1 });
  });
});

describe('the internet host', () => {
  it('accepts instances’ primary addresses only', async () => {
    expect(await vpc.ping(a, vpc.inetAddress)).toBe(true);
    const secondary = unassignedAddress('10.0.2');
    await ec2.send(
      new AssignPrivateIpAddressesCommand({
        NetworkInterfaceId: b.primaryEniId,
        PrivateIpAddresses: [secondary],
      }),
    );
    await vpc.settled();
    await sh(b, `ip addr add ${secondary}/32 dev eth0`);
    expect(await vpc.ping(b, a.primaryIp, { source: secondary })).toBe(true); // inside the VPC: fine
    expect(await vpc.ping(b, vpc.inetAddress, { source: secondary })).toBe(false);
  });

  it('echoes the source address it sees over HTTP', async () => {
    const body = await sh(a, `curl -sf --max-time 3 ${vpc.inetUrl}`);
    expect(JSON.parse(body).sourceAddress).toBe(a.primaryIp);
  });
});

describe('lifecycle', () => {
  it('refuses a prefix that is already in use, without touching its namespaces', async () => {
    await expect(createVpc({ prefix: vpc.prefix })).rejects.toThrow(/is in use/);
    expect(await listNetns()).toContain(vpc.routerNetns);
    expect(await vpc.ping(a, b.primaryIp)).toBe(true);
  });

  it('terminating an instance removes its namespace and its routes', async () => {
    const d = await vpc.launchInstance({ instanceType: 't3.medium', subnet: 1 });
    expect(await listNetns()).toContain(d.netns);
    expect(await vpc.ping(a, d.primaryIp)).toBe(true);
    await vpc.terminateInstance(d);
    expect(await listNetns()).not.toContain(d.netns);
    expect(await vpc.ping(a, d.primaryIp)).toBe(false);
  });

  it('with eniAttachDelayMs, a hot-plugged ENI shows up in the instance only after the delay', async () => {
    const slow = await createVpc({ eniAttachDelayMs: 1000 });
    try {
      const n = await slow.launchInstance({ instanceType: 'm5.large' }); // the primary is there at boot
      expect((await slow.exec(n, 'ip', ['link', 'show', 'eth0'])).code).toBe(0);
      const eni = slow.state.createNetworkInterface({ subnetId: n.subnetId });
      slow.state.attachNetworkInterface({ eniId: eni.id, instanceId: n.id, deviceIndex: 1 });
      await waitFor('the attach', () =>
        slow.state.getEni(eni.id)?.attachment?.status === 'attached' ? true : undefined,
      );
      await slow.settled();
      expect((await slow.exec(n, 'ip', ['link', 'show', 'eth1'])).code).not.toBe(0);
      await new Promise((r) => setTimeout(r, 1200));
      await slow.settled();
      expect((await slow.exec(n, 'ip', ['-br', 'link', 'show', 'eth1'])).stdout).toContain(eni.mac);
    } finally {
      await slow.destroy();
    }
  });

  it('reports a link it cannot make through settled(), and makes it on the next change', async () => {
    // Something in the instance already holds the name eth2: the attachment cannot appear.
    await sh(c, 'ip link add eth2 type veth peer name squat2');
    const eni = vpc.state.createNetworkInterface({ subnetId: c.subnetId });
    vpc.state.attachNetworkInterface({ eniId: eni.id, instanceId: c.id, deviceIndex: 2 });
    await waitFor('the attach', () =>
      vpc.state.getEni(eni.id)?.attachment?.status === 'attached' ? true : undefined,
    );
    await expect(vpc.settled()).rejects.toThrow(new RegExp(`instance ${c.id}: .*eth2`, 's'));
    await sh(c, 'ip link del eth2');
    vpc.state.assignPrivateIpAddresses({ eniId: eni.id, count: 1 }); // any change runs the loop again
    await vpc.settled();
    expect((await linkOf(c.netns, 'eth2')).address).toBe(eni.mac);
    const added = vpc.state.getEni(eni.id)!.privateIps[1]!.address;
    expect(await routerDevFor(added)).toBe(vpc.routerLinkOf(eni.id));
  });

  it('destroy removes every namespace of the prefix and the processes started in them', async () => {
    const other = await createVpc();
    const n = await other.launchInstance({ instanceType: 'm5.large' });
    const sleeper = other.runIn(n, 'sleep', ['300']);
    const names = (await listNetns()).filter((ns) => ns.startsWith(`${other.prefix}-`));
    expect(names.sort()).toEqual([`${other.prefix}-inet`, `${other.prefix}-vpc`, n.netns].sort());
    await other.destroy();
    await other.destroy(); // idempotent
    expect((await listNetns()).filter((ns) => ns.startsWith(`${other.prefix}-`))).toEqual([]);
    expect(sleeper.exitCode !== null || sleeper.signalCode !== null).toBe(true);
  });
});
