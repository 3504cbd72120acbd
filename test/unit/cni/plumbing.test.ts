import { describe, expect, it } from 'vitest';
import { hostRules } from '../../../cni/plumbing.js';
import { randomMac } from '../../../lib/net/addr.js';

describe('hostRules', () => {
  const base = { address: '10.0.2.20', vpcCidrs: ['10.0.0.0/16', '100.64.0.0/16'] };

  it('primary ENI: only "to <ip> lookup main" at 512', () => {
    expect(hostRules({ ...base, routeTable: 254, snat: true })).toEqual([
      { priority: 512, dst: '10.0.2.20/32', table: 'main' },
    ]);
  });

  it('secondary ENI with SNAT: one "from <ip> to <vpc cidr>" rule per VPC CIDR at 1536', () => {
    expect(hostRules({ ...base, routeTable: 3, snat: true })).toEqual([
      { priority: 512, dst: '10.0.2.20/32', table: 'main' },
      { priority: 1536, src: '10.0.2.20/32', dst: '10.0.0.0/16', table: 3 },
      { priority: 1536, src: '10.0.2.20/32', dst: '100.64.0.0/16', table: 3 },
    ]);
  });

  it('secondary ENI with SNAT: excluded CIDRs also follow the ENI table (they keep the pod address)', () => {
    expect(
      hostRules({ ...base, routeTable: 3, snat: true, excludeSnatCidrs: ['198.51.100.0/24'] }),
    ).toContainEqual({
      priority: 1536,
      src: '10.0.2.20/32',
      dst: '198.51.100.0/24',
      table: 3,
    });
  });

  it('secondary ENI with external SNAT: everything from the pod uses the ENI table', () => {
    expect(hostRules({ ...base, routeTable: 2, snat: false })).toEqual([
      { priority: 512, dst: '10.0.2.20/32', table: 'main' },
      { priority: 1536, src: '10.0.2.20/32', table: 2 },
    ]);
  });
});

describe('randomMac', () => {
  it('is unicast and locally administered, and differs between calls', () => {
    const macs = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const mac = randomMac();
      expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      const first = Number.parseInt(mac.slice(0, 2), 16);
      expect(first & 0x01).toBe(0);
      expect(first & 0x02).toBe(2);
      macs.add(mac);
    }
    expect(macs.size).toBe(50);
  });
});
