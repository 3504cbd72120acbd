// lib/net rtnetlink against the real kernel, in two namespaces of our own: "host" (a) and "pod" (b).
// Each effect is checked with `ip -j` so the assertions do not trust our own parsers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCode, netnsInode, netnsPath, openRtnl, type Rtnl } from '../../../lib/net/index.js';
import { ip, ipJson, linkNames, NetnsFixture } from './helpers.js';

interface IpLink {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  link_netnsid?: number;
  linkinfo?: { info_kind: string };
}

const fx = new NetnsFixture();
let host: string;
let pod: string;
let hostNl: Rtnl;
let podNl: Rtnl;

const HOST_MAC = '0a:58:0a:00:00:01';
const POD_MAC = '0a:58:0a:00:00:02';

beforeAll(() => {
  host = fx.add('a');
  pod = fx.add('b');
  hostNl = openRtnl(netnsPath(host));
  podNl = openRtnl(netnsPath(pod));
});
afterAll(() => {
  hostNl?.close();
  podNl?.close();
  fx.cleanup();
});

const link = (ns: string, name: string) => ipJson<IpLink>(ns, '-d', 'link', 'show', 'dev', name)[0]!;

describe('a handle opened for a namespace', () => {
  it('acts in that namespace while the caller stays in its own', async () => {
    const home = netnsInode();
    const names = (await hostNl.listLinks()).map((l) => l.name);
    expect(names).toEqual(['lo']);
    expect(netnsInode()).toBe(home);
  });
});

describe('links', () => {
  it('creates a veth pair with the peer placed directly in another namespace', async () => {
    await hostNl.createVeth({
      name: 'eni0a1b2c',
      peerName: 'eth0',
      peerNetns: netnsPath(pod),
      mtu: 9001,
      mac: HOST_MAC,
      peerMac: POD_MAC,
    });
    const h = link(host, 'eni0a1b2c');
    expect(h).toMatchObject({ mtu: 9001, address: HOST_MAC, linkinfo: { info_kind: 'veth' } });
    const p = link(pod, 'eth0');
    expect(p).toMatchObject({ mtu: 9001, address: POD_MAC, linkinfo: { info_kind: 'veth' } });
    expect(linkNames(host)).toEqual(['lo', 'eni0a1b2c']);
  });

  it('reports the pair through getLink, findLink and findLinkByMac', async () => {
    const h = await hostNl.getLink('eni0a1b2c');
    expect(h).toMatchObject({ name: 'eni0a1b2c', mtu: 9001, mac: HOST_MAC, kind: 'veth', up: false });
    expect(await hostNl.getLink(h.index)).toMatchObject({ name: 'eni0a1b2c' });
    expect(await hostNl.findLinkByMac(HOST_MAC.toUpperCase())).toMatchObject({ index: h.index });
    expect(await hostNl.findLink('nosuch0')).toBeUndefined();
    expect(await podNl.findLinkByMac(HOST_MAC)).toBeUndefined();
  });

  it('fails a second create with EEXIST naming the operation', async () => {
    const err = await hostNl
      .createVeth({ name: 'eni0a1b2c', peerName: 'eth1', peerNetns: netnsPath(pod) })
      .catch((e) => e);
    expect(err.code).toBe('EEXIST');
    expect(err.message).toMatch(/^create veth eni0a1b2c peer eth1 in .*: File exists \(EEXIST\)$/);
    expect(hasCode(err, 'EEXIST')).toBe(true);
  });

  it('sets up/down, MTU and MAC', async () => {
    await hostNl.setLinkUp('eni0a1b2c');
    await podNl.setLinkUp('eth0');
    await podNl.setLinkUp('lo');
    expect(link(host, 'eni0a1b2c').flags).toContain('UP');
    await hostNl.setMtu('eni0a1b2c', 1500);
    await hostNl.setMac('eni0a1b2c', '0a:58:0a:00:00:09');
    expect(link(host, 'eni0a1b2c')).toMatchObject({ mtu: 1500, address: '0a:58:0a:00:00:09' });
    await hostNl.setLink('eni0a1b2c', { mtu: 9001, mac: HOST_MAC });
    await hostNl.setLinkDown('eni0a1b2c');
    expect(link(host, 'eni0a1b2c').flags).not.toContain('UP');
    await hostNl.setLinkUp('eni0a1b2c');
    expect((await hostNl.getLink('eni0a1b2c')).up).toBe(true);
  });

  it('moves a link into another namespace, renaming it, and deletes links', async () => {
    await hostNl.createVeth({ name: 'mv-a', peerName: 'mv-b' });
    await hostNl.moveLink('mv-b', netnsPath(pod), 'moved0');
    expect(linkNames(host)).toContain('mv-a');
    expect(link(pod, 'moved0').linkinfo?.info_kind).toBe('veth');
    await podNl.deleteLink('moved0');
    // Deleting one end of a veth deletes both.
    expect(ip(host, 'link', 'show')).not.toContain('mv-a');
    const err = await podNl.deleteLink('moved0').catch((e) => e);
    expect(err).toMatchObject({ code: 'ENODEV', message: 'delete link moved0: No such device (ENODEV)' });
  });

  it('can place both ends in other namespaces, never creating them in its own', async () => {
    await podNl.createVeth({
      name: 'far0',
      peerName: 'far1',
      netns: netnsPath(host),
      peerNetns: netnsPath(host),
    });
    expect(linkNames(host)).toEqual(expect.arrayContaining(['far0', 'far1']));
    expect(linkNames(pod)).not.toContain('far0');
    await hostNl.deleteLink('far0');
    expect(linkNames(host)).not.toContain('far1');
  });

  it('rejects bad names and values before sending anything', async () => {
    await expect(hostNl.createVeth({ name: 'a-name-too-long0', peerName: 'x' })).rejects.toThrow(
      /invalid veth name "a-name-too-long0"/,
    );
    await expect(hostNl.getLink('bad/name')).rejects.toThrow(TypeError);
    await expect(hostNl.setMtu('eni0a1b2c', 20)).rejects.toThrow(/invalid MTU 20/);
    await expect(hostNl.setMac('eni0a1b2c', '0a:58:0a')).rejects.toThrow(/invalid MAC address/);
    await expect(
      hostNl.createVeth({ name: 'v1', peerName: 'v2', peerNetns: '/var/run/netns/none' }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('addresses', () => {
  it('adds, lists, refuses duplicates, replaces and deletes', async () => {
    await podNl.addAddress('eth0', '10.0.1.7/32');
    const shown = ipJson<{ addr_info: { local: string; prefixlen: number; scope: string }[] }>(
      pod,
      'addr',
      'show',
      'dev',
      'eth0',
    )[0]!.addr_info.filter((a) => a.local === '10.0.1.7');
    expect(shown).toEqual([expect.objectContaining({ prefixlen: 32, scope: 'global' })]);
    expect(await podNl.listAddresses({ dev: 'eth0', family: 'inet' })).toEqual([
      expect.objectContaining({ address: '10.0.1.7', prefixLen: 32, cidr: '10.0.1.7/32', scope: 'universe' }),
    ]);
    await expect(podNl.addAddress('eth0', '10.0.1.7/32')).rejects.toMatchObject({
      code: 'EEXIST',
      // The kernel may add its extended-ack reason after the errno's wording.
      message: expect.stringMatching(/^add address 10\.0\.1\.7\/32 dev eth0: File exists(: .+)? \(EEXIST\)$/),
    });
    await podNl.replaceAddress('eth0', '10.0.1.7/32');
    await hostNl.addAddress('eni0a1b2c', '169.254.1.1/32', { scope: 'link' });
    expect(ip(host, 'addr', 'show', 'dev', 'eni0a1b2c')).toMatch(/inet 169\.254\.1\.1\/32 scope link/);
    await hostNl.deleteAddress('eni0a1b2c', '169.254.1.1/32');
    expect(ip(host, 'addr', 'show', 'dev', 'eni0a1b2c')).not.toContain('169.254.1.1');
    await expect(hostNl.deleteAddress('eni0a1b2c', '169.254.1.1/32')).rejects.toMatchObject({
      code: 'EADDRNOTAVAIL',
    });
  });

  it('explains a missing device and a malformed address', async () => {
    await expect(podNl.addAddress('nodev0', '10.0.1.8/32')).rejects.toMatchObject({
      code: 'ENODEV',
      message: 'add address 10.0.1.8/32 dev nodev0: device nodev0: No such device (ENODEV)',
    });
    await expect(podNl.addAddress('eth0', '10.0.1.300/32')).rejects.toThrow(/invalid interface address/);
    await expect(podNl.addAddress('eth0', '10.0.1.8/33')).rejects.toThrow(/prefix length must be 0-32/);
  });
});

describe('routes', () => {
  it('builds the pod side of a CNI ADD: link route to the gateway, default via it', async () => {
    await podNl.addRoute({ dst: '169.254.1.1/32', dev: 'eth0' });
    await podNl.addRoute({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' });
    const routes = ipJson<Record<string, unknown>>(pod, 'route', 'show');
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0', scope: 'link' }),
    );
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' }),
    );
    const listed = await podNl.listRoutes();
    expect(listed).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', table: 254, protocol: 'boot' }),
    );
  });

  it('fails a duplicate add with EEXIST, and replace is idempotent', async () => {
    await expect(podNl.addRoute({ dst: '169.254.1.1/32', dev: 'eth0' })).rejects.toMatchObject({
      code: 'EEXIST',
      // The kernel may add its extended-ack reason after the errno's wording.
      message: expect.stringMatching(
        /^add route 169\.254\.1\.1\/32 dev eth0: File exists(: .+)? \(EEXIST\)$/,
      ),
    });
    await podNl.replaceRoute({ dst: '169.254.1.1/32', dev: 'eth0' });
    await podNl.replaceRoute({ dst: '169.254.1.1/32', dev: 'eth0' });
    expect(ipJson(pod, 'route', 'show', '169.254.1.1/32').length).toBe(1);
  });

  it('uses tables above 255, src and metric, and deletes with ESRCH on repeat', async () => {
    await hostNl.addAddress('eni0a1b2c', '10.0.0.10/24');
    await hostNl.addRoute({ dst: '10.0.1.7', dev: 'eni0a1b2c', table: 1000, src: '10.0.0.10', metric: 5 });
    await hostNl.addRoute({ dst: 'default', gateway: '10.0.0.1', dev: 'eni0a1b2c', table: 1000 });
    const t1000 = ipJson<Record<string, unknown>>(host, 'route', 'show', 'table', '1000');
    expect(t1000).toContainEqual(
      expect.objectContaining({
        dst: '10.0.1.7',
        dev: 'eni0a1b2c',
        prefsrc: '10.0.0.10',
        metric: 5,
        scope: 'link',
      }),
    );
    expect(t1000).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '10.0.0.1' }));
    expect(await hostNl.listRoutes({ table: 1000 })).toHaveLength(2);
    expect((await hostNl.listRoutes()).some((r) => r.table === 1000)).toBe(false);
    await hostNl.deleteRoute({ dst: '10.0.1.7/32', table: 1000 });
    expect(ipJson(host, 'route', 'show', 'table', '1000', '10.0.1.7').length).toBe(0);
    await expect(hostNl.deleteRoute({ dst: '10.0.1.7/32', table: 1000 })).rejects.toMatchObject({
      code: 'ESRCH',
    });
  });

  it('explains a missing device and an unreachable gateway', async () => {
    await expect(hostNl.addRoute({ dst: '10.9.0.0/16', dev: 'nodev0' })).rejects.toMatchObject({
      code: 'ENODEV',
      message: 'add route 10.9.0.0/16 dev nodev0: device nodev0: No such device (ENODEV)',
    });
    await expect(hostNl.addRoute({ dst: '10.9.0.0/16', gateway: '192.0.2.77' })).rejects.toMatchObject({
      code: 'ENETUNREACH',
    });
    await expect(hostNl.addRoute({ dst: '10.9.0.0/16', table: 0 })).rejects.toThrow(/invalid route table 0/);
  });
});

describe('IPv6', () => {
  it('adds and lists IPv6 addresses and routes', async () => {
    await podNl.addAddress('eth0', 'fd00:10::7/128');
    await podNl.addRoute({ dst: 'fd00:20::/64', dev: 'eth0', metric: 10 });
    expect(ip(pod, '-6', 'addr', 'show', 'dev', 'eth0')).toContain('inet6 fd00:10::7/128');
    expect(ipJson(pod, '-6', 'route', 'show', 'fd00:20::/64')).toEqual([
      expect.objectContaining({ dst: 'fd00:20::/64', dev: 'eth0', metric: 10 }),
    ]);
    expect(await podNl.listAddresses({ dev: 'eth0', family: 'inet6' })).toContainEqual(
      expect.objectContaining({ cidr: 'fd00:10::7/128' }),
    );
    expect(await podNl.listRoutes({ family: 'inet6' })).toContainEqual(
      expect.objectContaining({ dst: 'fd00:20::/64', metric: 10 }),
    );
    await podNl.deleteRoute({ dst: 'fd00:20::/64', dev: 'eth0', metric: 10 });
    await podNl.deleteAddress('eth0', 'fd00:10::7/128');
    expect(ip(pod, '-6', 'addr', 'show', 'dev', 'eth0')).not.toContain('fd00:10::7');
  });
});

describe('many requests at once', () => {
  it('pipelines 500 route adds on one socket and dumps them back across several datagrams', async () => {
    const dsts = Array.from({ length: 500 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
    await Promise.all(dsts.map((dst) => hostNl.addRoute({ dst, dev: 'eni0a1b2c', table: 2000 })));
    expect(ipJson(host, 'route', 'show', 'table', '2000')).toHaveLength(500);
    const listed = await hostNl.listRoutes({ table: 2000 });
    expect(listed.map((r) => r.dst).sort()).toEqual([...dsts].sort());
    await Promise.all(dsts.map((dst) => hostNl.deleteRoute({ dst, table: 2000 })));
    expect(ipJson(host, 'route', 'show', 'table', '2000')).toHaveLength(0);
  });

  it('interleaves dumps and changes from many callers on one handle without EBUSY', async () => {
    // ipamd serves many pods at once over one node handle: a dump started while another is being
    // read must not be refused (the kernel answers EBUSY on a socket that is mid-dump).
    const dsts = Array.from({ length: 200 }, (_, i) => `10.${120 + (i >> 8)}.${i & 255}.0/24`);
    await Promise.all(dsts.map((dst) => hostNl.addRoute({ dst, dev: 'eni0a1b2c', table: 2001 })));
    const work = Array.from({ length: 60 }, (_, i) =>
      i % 3 === 0
        ? hostNl.listRoutes({ table: 2001 }).then((r) => r.length)
        : i % 3 === 1
          ? hostNl.listRules('inet').then((r) => r.length)
          : hostNl.addRoute({ dst: `10.130.${i}.0/24`, dev: 'eni0a1b2c', table: 2002 }).then(() => 1),
    );
    const outcomes = await Promise.allSettled(work);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(ipJson(host, 'route', 'show', 'table', '2002')).toHaveLength(20);
    await Promise.all(dsts.map((dst) => hostNl.deleteRoute({ dst, table: 2001 })));
    for (let i = 2; i < 60; i += 3) await hostNl.deleteRoute({ dst: `10.130.${i}.0/24`, table: 2002 });
  });
});

describe('rules', () => {
  it('adds to/from/fwmark/not rules with priorities and tables > 255', async () => {
    await hostNl.addRule({ priority: 512, dst: '10.0.1.7/32', table: 'main' });
    await hostNl.addRule({ priority: 1536, src: '10.0.1.7/32', table: 1000 });
    await hostNl.addRule({ priority: 1024, invert: true, fwmark: 0x80, fwmask: 0x80, table: 'main' });
    const rules = ipJson<Record<string, unknown>>(host, 'rule', 'show');
    expect(rules).toContainEqual(
      expect.objectContaining({ priority: 512, src: 'all', dst: '10.0.1.7', table: 'main' }),
    );
    expect(rules).toContainEqual(expect.objectContaining({ priority: 1536, src: '10.0.1.7', table: '1000' }));
    expect(rules).toContainEqual(
      expect.objectContaining({ priority: 1024, not: null, fwmark: '0x80', fwmask: '0x80', table: 'main' }),
    );
    const listed = await hostNl.listRules();
    expect(listed).toContainEqual(
      expect.objectContaining({ priority: 1024, invert: true, fwmark: 0x80, fwmask: 0x80, table: 254 }),
    );
    expect(listed).toContainEqual(
      expect.objectContaining({ priority: 1536, src: '10.0.1.7/32', table: 1000 }),
    );
  });

  it('steers lookups: lookupRoute reports the table the rules selected', async () => {
    // from 10.0.1.7 -> table 1000 (priority 1536); table 1000 has a default via 10.0.0.1.
    // An output lookup "from" an address needs that address to be local.
    await hostNl.addAddress('eni0a1b2c', '10.0.1.7/32');
    const viaRule = await hostNl.lookupRoute('192.0.2.50', { src: '10.0.1.7' });
    expect(viaRule).toMatchObject({ table: 1000, gateway: '10.0.0.1', dst: '192.0.2.50/32' });
    expect(viaRule.oif).toBe(await hostNl.linkIndex('eni0a1b2c'));
    await expect(hostNl.lookupRoute('192.0.2.50')).rejects.toMatchObject({ code: 'ENETUNREACH' });
    expect(await hostNl.lookupRoute('10.0.0.99')).toMatchObject({ table: 254, src: '10.0.0.10' });
    await hostNl.deleteAddress('eni0a1b2c', '10.0.1.7/32');
  });

  it('refuses an identical rule with EEXIST and deletes with ENOENT on repeat', async () => {
    await expect(hostNl.addRule({ priority: 1536, src: '10.0.1.7/32', table: 1000 })).rejects.toMatchObject({
      code: 'EEXIST',
      // The kernel may add its extended-ack reason after the errno's wording.
      message: expect.stringMatching(
        /^add rule pref 1536 from 10\.0\.1\.7\/32 lookup 1000: File exists(: .+)? \(EEXIST\)$/,
      ),
    });
    await hostNl.deleteRule({ priority: 1536, src: '10.0.1.7/32', table: 1000 });
    expect(ipJson<{ priority: number }>(host, 'rule', 'show').some((r) => r.priority === 1536)).toBe(false);
    await expect(
      hostNl.deleteRule({ priority: 1536, src: '10.0.1.7/32', table: 1000 }),
    ).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('neighbours', () => {
  it('pins the gateway MAC with a permanent entry; add repeats fail, replace does not', async () => {
    await podNl.addNeighbor({ ip: '169.254.1.1', mac: HOST_MAC, dev: 'eth0' });
    const entries = ipJson<Record<string, unknown>>(pod, 'neigh', 'show', 'dev', 'eth0');
    expect(entries).toContainEqual(
      expect.objectContaining({ dst: '169.254.1.1', lladdr: HOST_MAC, state: ['PERMANENT'] }),
    );
    await expect(podNl.addNeighbor({ ip: '169.254.1.1', mac: HOST_MAC, dev: 'eth0' })).rejects.toMatchObject({
      code: 'EEXIST',
    });
    await podNl.replaceNeighbor({ ip: '169.254.1.1', mac: '0a:58:0a:00:00:42', dev: 'eth0' });
    expect(await podNl.listNeighbors('eth0')).toContainEqual(
      expect.objectContaining({ ip: '169.254.1.1', mac: '0a:58:0a:00:00:42', state: ['permanent'] }),
    );
    await podNl.deleteNeighbor({ ip: '169.254.1.1', dev: 'eth0' });
    expect(ipJson(pod, 'neigh', 'show', 'dev', 'eth0').length).toBe(0);
    await expect(podNl.deleteNeighbor({ ip: '169.254.1.1', dev: 'eth0' })).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('handle lifecycle', () => {
  it('rejects requests after close() with a clear error', async () => {
    const nl = openRtnl(netnsPath(host));
    nl.close();
    await expect(nl.listLinks()).rejects.toMatchObject({
      code: 'EBADF',
      message: expect.stringMatching(/closed/),
    });
  });

  it('fails to open for a missing namespace with ENOENT', () => {
    expect(() => openRtnl(netnsPath(`${host}-gone`))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
