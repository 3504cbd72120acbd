import { describe, expect, it } from 'vitest';
import type { CniEnv } from '../../../cni/env.js';
import { fromPrevResult } from '../../../cni/plugin.js';
import type { Result } from '../../../cni/result.js';

const env = { ifName: 'eth0' } as CniEnv;

describe('fromPrevResult', () => {
  it("takes only this plugin's pod interface, its addresses and the host end listed before it", () => {
    const chained: Result = {
      interfaces: [
        { name: 'vethother', mac: '02:00:00:00:00:09' }, // an earlier plugin's host side
        { name: 'net1', sandbox: '/var/run/netns/p' },
        { name: 'enic440f455693', mac: '02:00:00:00:00:01' },
        { name: 'eth0', sandbox: '/var/run/netns/p' },
      ],
      ips: [
        { address: '192.168.0.2/24', interface: 1 },
        { address: '10.0.1.5/32', interface: 3 },
        { address: 'fd00::5/128', interface: 3 },
      ],
      routes: [],
      dns: {},
    };
    expect(fromPrevResult(chained, env)).toEqual({
      addresses: ['10.0.1.5'],
      hostVeths: ['enic440f455693'],
      hostVethMac: '02:00:00:00:00:01',
    });
  });

  it('finds nothing without a pod interface of that name', () => {
    const other: Result = {
      interfaces: [{ name: 'eth1', sandbox: '/n' }],
      ips: [{ address: '10.0.1.5/32', interface: 0 }],
      routes: [],
      dns: {},
    };
    expect(fromPrevResult(other, env)).toEqual({ addresses: [], hostVeths: [] });
    expect(fromPrevResult(undefined, env)).toEqual({ addresses: [], hostVeths: [] });
  });
});
