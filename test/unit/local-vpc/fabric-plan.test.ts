import { describe, expect, it } from 'vitest';
import { plainIpv4, subnetGateway, subnetPrefixLength } from '../../../infra/local-vpc/fabric/addresses.js';
import { configurePrimaryLines, createEniLinkLines } from '../../../infra/local-vpc/fabric/eni-links.js';
import { imdsHopRulesScript, imdsHopTableScript } from '../../../infra/local-vpc/fabric/imds-hops.js';
import type { AttachedEniView } from '../../../infra/local-vpc/fabric/model.js';
import {
  belongsToPrefix,
  instanceEniLinkName,
  instanceNetnsName,
  newPrefix,
  validatePrefix,
} from '../../../infra/local-vpc/fabric/names.js';
import { asCidr, diffRoutes, routeBatch } from '../../../infra/local-vpc/fabric/routes.js';

describe('fabric names', () => {
  it('makes prefixes that validate and differ per call', () => {
    const a = newPrefix();
    const b = newPrefix();
    expect(validatePrefix(a)).toBe(a);
    expect(a).not.toBe(b);
  });

  it('rejects prefixes that could match other runs or are not vpccni-<runid>', () => {
    expect(() => validatePrefix('vpccni-')).toThrow(/vpccni-<runid>/);
    expect(() => validatePrefix('other-abc')).toThrow(/vpccni-<runid>/);
    expect(() => validatePrefix('vpccni-ab-c')).toThrow();
    expect(() => validatePrefix('vpccni-ABC')).toThrow();
  });

  it('matches only whole prefix components', () => {
    expect(belongsToPrefix('vpccni-abc-vpc', 'vpccni-abc')).toBe(true);
    expect(belongsToPrefix('vpccni-abcd-vpc', 'vpccni-abc')).toBe(false);
  });

  it('shortens instance namespaces and falls back to the full id on a clash', () => {
    const id = 'i-0123456789abcdef0';
    expect(instanceNetnsName('vpccni-x', id, new Set())).toBe('vpccni-x-i-9abcdef0');
    expect(instanceNetnsName('vpccni-x', id, new Set(['vpccni-x-i-9abcdef0']))).toBe(`vpccni-x-${id}`);
    expect(() => instanceNetnsName('vpccni-x', 'i-zz', new Set())).toThrow(/invalid instance id/);
  });

  it('names instance links eth<device index>, qualified by card off card 0', () => {
    expect(instanceEniLinkName(0)).toBe('eth0');
    expect(instanceEniLinkName(3, 0)).toBe('eth3');
    expect(instanceEniLinkName(1, 2)).toBe('c2eth1');
  });
});

describe('fabric addresses', () => {
  it('puts the gateway at the first address after the network address', () => {
    expect(subnetGateway('10.0.1.0/24')).toBe('10.0.1.1');
    expect(subnetGateway('192.168.64.0/18')).toBe('192.168.64.1');
    expect(subnetPrefixLength('192.168.64.0/18')).toBe(18);
  });

  it('unwraps v4-mapped peers', () => {
    expect(plainIpv4('::ffff:10.0.1.5')).toBe('10.0.1.5');
    expect(plainIpv4('10.0.1.5')).toBe('10.0.1.5');
    expect(plainIpv4(undefined)).toBeUndefined();
  });
});

describe('router delivery routes', () => {
  it('adds new destinations, moves reassigned ones and removes released ones', () => {
    const actual = new Map([
      ['10.0.1.10/32', { dev: 've0' }],
      ['10.0.1.11/32', { dev: 've0', via: '10.0.1.10' }],
      ['10.0.1.12/32', { dev: 've0', via: '10.0.1.10' }],
    ]);
    const desired = new Map([
      ['10.0.1.10/32', { dev: 've0' }],
      ['10.0.1.11/32', { dev: 've1', via: '10.0.1.20' }], // moved to another ENI
      ['10.0.1.32/28', { dev: 've1', via: '10.0.1.20' }], // new prefix
    ]);
    const diff = diffRoutes(actual, desired);
    expect(diff.replace).toEqual([
      { dst: '10.0.1.11/32', dev: 've1', via: '10.0.1.20' },
      { dst: '10.0.1.32/28', dev: 've1', via: '10.0.1.20' },
    ]);
    expect(diff.remove).toEqual(['10.0.1.12/32']);
    expect(routeBatch(diff)).toEqual([
      'route del 10.0.1.12/32',
      'route replace 10.0.1.11/32 via 10.0.1.20 dev ve1 onlink',
      'route replace 10.0.1.32/28 via 10.0.1.20 dev ve1 onlink',
    ]);
  });

  it('routes an ENI primary address straight to the link', () => {
    const diff = diffRoutes(new Map(), new Map([['10.0.1.10/32', { dev: 've0' }]]));
    expect(routeBatch(diff)).toEqual(['route replace 10.0.1.10/32 dev ve0 scope link']);
  });

  it('produces nothing when the kernel already matches', () => {
    const t = new Map([['10.0.1.11/32', { dev: 've0', via: '10.0.1.10' }]]);
    expect(routeBatch(diffRoutes(t, new Map([['10.0.1.11/32', { dev: 've0', via: '10.0.1.10' }]])))).toEqual(
      [],
    );
  });

  it('treats bare addresses as /32', () => {
    expect(asCidr('10.0.0.5')).toBe('10.0.0.5/32');
    expect(asCidr('10.0.0.16/28')).toBe('10.0.0.16/28');
  });
});

describe('ENI link commands', () => {
  const eni: AttachedEniView = {
    eniId: 'eni-0123456789abcdef0',
    primary: false,
    mac: '02:11:22:33:44:55',
    deviceIndex: 2,
    networkCardIndex: 0,
    subnetCidr: '10.0.2.0/24',
    primaryIp: '10.0.2.9',
    privateIps: ['10.0.2.9'],
    prefixes: [],
    attachedAt: 0,
  };

  it('creates the pair with the MAC on the instance end and the gateway on the router end', () => {
    const lines = createEniLinkLines(eni, 've7', 'vpccni-x-i-1');
    expect(lines[0]).toContain('link add ve7 mtu 9001 type veth peer name eth2 netns vpccni-x-i-1');
    expect(lines[0]).toContain('address 02:11:22:33:44:55');
    expect(lines).toContain('address add 10.0.2.1/32 dev ve7');
    expect(lines).toContain('neigh replace 10.0.2.9 lladdr 02:11:22:33:44:55 dev ve7 nud permanent');
  });

  it('configures the primary ENI like DHCP: address with the subnet length, up, default via gateway', () => {
    expect(configurePrimaryLines({ ...eni, primary: true, deviceIndex: 0 })).toEqual([
      'address add 10.0.2.9/24 dev eth0',
      'link set eth0 up',
      'route add default via 10.0.2.1 dev eth0',
    ]);
  });
});

describe('IMDS hop limits (nft in the router)', () => {
  it('marks PUT requests to IMDS and sets the TTL only on those answers', () => {
    const table = imdsHopTableScript();
    expect(table).toContain(
      'ip daddr 169.254.169.254 tcp dport 80 @ih,0,32 0x50555420 ct mark set ct mark | 0x00000001',
    );
    expect(table).toContain('type filter hook postrouting priority 0');
  });

  it('one TTL rule per distinct hop limit, naming its router links', () => {
    const script = imdsHopRulesScript(
      new Map([
        ['ve3', 2],
        ['ve0', 1],
        ['ve1', 1],
      ]),
    );
    expect(script.trim().split('\n')).toEqual([
      'flush chain ip localvpc_imds hop_limit',
      'add rule ip localvpc_imds hop_limit ip saddr 169.254.169.254 tcp sport 80 ct mark and 0x00000001 == 0x00000001 oifname { "ve0", "ve1" } ip ttl set 1',
      'add rule ip localvpc_imds hop_limit ip saddr 169.254.169.254 tcp sport 80 ct mark and 0x00000001 == 0x00000001 oifname { "ve3" } ip ttl set 2',
    ]);
    expect(imdsHopRulesScript(new Map())).toBe('flush chain ip localvpc_imds hop_limit\n');
    expect(() => imdsHopRulesScript(new Map([['ve0', 0]]))).toThrow(/1-255/);
  });
});
