import { describe, expect, it } from 'vitest';
import { type InstanceTypeLimits, lookupInstanceType } from '../../../lib/instance-types/index.js';
import { computeMaxPods, type MaxPodsOptions } from '../../../maxpods/compute.js';
import { parseCniVersion } from '../../../maxpods/version.js';

const type = (name: string): InstanceTypeLimits => {
  const t = lookupInstanceType(name);
  if (!t) throw new Error(`test needs ${name} in the table`);
  return t;
};
const opts = (o: Partial<Omit<MaxPodsOptions, 'cniVersion'>> & { cni?: string } = {}): MaxPodsOptions => ({
  cniVersion: parseCniVersion(o.cni ?? '1.18.3'),
  customNetworking: o.customNetworking ?? false,
  prefixDelegation: o.prefixDelegation ?? false,
  maxEni: o.maxEni,
  trunk: o.trunk ?? false,
});

// Every expected figure below was worked out by hand from the type's limits.
describe('secondary-IP mode', () => {
  it('m5.large: 3 ENIs of 10 addresses, 2 vCPUs', () => {
    const r = computeMaxPods(type('m5.large'), opts());
    expect(r).toMatchObject({ mode: 'secondary-ip', enisForPods: 3, podAddressesPerEni: 9 });
    expect(r.maxAllowed).toBe(29); // 3 * 9 + 2
    expect(r.cap).toBe(110);
    expect(r.recommended).toBe(29);
    expect(r.formula).toBe('3 * (10 - 1) + 2 = 29');
    expect(r.fallbacks).toEqual([]);
  });

  it('t3.nano: 2 ENIs of 2 addresses', () => {
    expect(computeMaxPods(type('t3.nano'), opts()).maxAllowed).toBe(4);
  });

  it('caps at 110 up to 30 vCPUs and at 250 above', () => {
    const r4 = computeMaxPods(type('m5.4xlarge'), opts()); // 16 vCPUs, 8 * 29 + 2
    expect([r4.maxAllowed, r4.cap, r4.recommended]).toEqual([234, 110, 110]);
    const r8 = computeMaxPods(type('m5.8xlarge'), opts()); // 32 vCPUs
    expect([r8.maxAllowed, r8.cap, r8.recommended]).toEqual([234, 250, 234]);
    const r24 = computeMaxPods(type('m5.24xlarge'), opts()); // 96 vCPUs, 15 * 49 + 2
    expect([r24.maxAllowed, r24.cap, r24.recommended]).toEqual([737, 250, 250]);
    // No table type has exactly 30 or 31 vCPUs: the boundary on made-up limits.
    const at = (vcpus: number) => computeMaxPods({ ...type('m5.24xlarge'), vcpus }, opts()).recommended;
    expect(at(30)).toBe(110);
    expect(at(31)).toBe(250);
  });

  it('gives no recommended value when the vCPU count is unknown', () => {
    const r = computeMaxPods(type('mac-m4max.metal'), opts());
    expect(r.cap).toBeNull();
    expect(r.recommended).toBeNull();
    expect(r.maxAllowed).toBeGreaterThan(0);
  });
});

describe('prefix delegation', () => {
  it('m5.large with CNI 1.9.0: 3 * (9 * 16) + 2', () => {
    const r = computeMaxPods(type('m5.large'), opts({ prefixDelegation: true, cni: '1.9.0' }));
    expect(r).toMatchObject({ mode: 'prefix-delegation', podAddressesPerEni: 144, maxAllowed: 434 });
    expect(r.recommended).toBe(110);
    expect(r.formula).toBe('3 * ((10 - 1) * 16) + 2 = 434');
  });

  it('uses numeric version order: 1.10.0 yes, 1.8.0 no', () => {
    expect(computeMaxPods(type('m5.large'), opts({ prefixDelegation: true, cni: '1.10.0' })).maxAllowed).toBe(
      434,
    );
    const old = computeMaxPods(type('m5.large'), opts({ prefixDelegation: true, cni: '1.8.0' }));
    expect(old.mode).toBe('secondary-ip');
    expect(old.maxAllowed).toBe(29);
    expect(old.fallbacks).toEqual([
      {
        kind: 'prefix-delegation',
        message:
          'prefix delegation not used for m5.large: CNI version 1.8.0 is not newer than 1.8; using secondary-IP mode',
      },
    ]);
  });

  it('falls back to secondary IPs on Xen (m4.large: 2 * 9 + 2)', () => {
    const r = computeMaxPods(type('m4.large'), opts({ prefixDelegation: true }));
    expect(r.mode).toBe('secondary-ip');
    expect(r.maxAllowed).toBe(20);
    expect(r.fallbacks[0]!.message).toMatch(/m4\.large is not a Nitro instance type \(hypervisor: xen\)/);
  });

  it('falls back on bare metal, as the AMI tool does (no nitro hypervisor reported)', () => {
    const r = computeMaxPods(type('m5.metal'), opts({ prefixDelegation: true }));
    expect(r.mode).toBe('secondary-ip');
    expect(r.maxAllowed).toBe(737);
    expect(r.fallbacks[0]!.message).toMatch(/hypervisor: unknown/);
  });

  it('c6in.32xlarge counts only the 8 ENIs of its default card, not all 16', () => {
    expect(computeMaxPods(type('c6in.32xlarge'), opts()).maxAllowed).toBe(394); // 8 * 49 + 2
    const pd = computeMaxPods(type('c6in.32xlarge'), opts({ prefixDelegation: true }));
    expect(pd.maxAllowed).toBe(6274); // 8 * 49 * 16 + 2
    expect(pd.recommended).toBe(250);
  });

  it('p5.48xlarge: 2 ENIs on the default card of 32', () => {
    expect(computeMaxPods(type('p5.48xlarge'), opts({ prefixDelegation: true })).maxAllowed).toBe(1570); // 2*49*16+2
  });
});

describe('ENI adjustments', () => {
  it('custom networking leaves the primary ENI out', () => {
    expect(computeMaxPods(type('m5.large'), opts({ customNetworking: true })).maxAllowed).toBe(20); // 2*9+2
    const pd = computeMaxPods(type('m5.large'), opts({ customNetworking: true, prefixDelegation: true }));
    expect(pd.maxAllowed).toBe(290); // 2*144+2
  });

  it('--cni-max-eni caps the ENIs, before custom networking takes one', () => {
    expect(computeMaxPods(type('m5.large'), opts({ maxEni: 1 })).maxAllowed).toBe(11); // 1*9+2
    expect(computeMaxPods(type('m5.large'), opts({ maxEni: 5 })).maxAllowed).toBe(29); // cap above 3: no effect
    const both = computeMaxPods(type('m5.large'), opts({ maxEni: 2, customNetworking: true }));
    expect(both.enisForPods).toBe(1);
    expect(both.maxAllowed).toBe(11);
    const pd = computeMaxPods(type('m5.24xlarge'), opts({ maxEni: 2, prefixDelegation: true }));
    expect(pd.maxAllowed).toBe(1570); // 2 * 49 * 16 + 2
  });

  it('--trunk reserves one ENI on Nitro and none elsewhere', () => {
    expect(computeMaxPods(type('m5.large'), opts({ trunk: true })).maxAllowed).toBe(20);
    expect(computeMaxPods(type('m5.large'), opts({ trunk: true, customNetworking: true })).maxAllowed).toBe(
      11,
    );
    const xen = computeMaxPods(type('m4.large'), opts({ trunk: true }));
    expect(xen.maxAllowed).toBe(20); // 2 * 9 + 2, nothing reserved
    expect(xen.fallbacks.map((f) => f.kind)).toEqual(['trunk']);
  });

  it('leaves only host-network pods when no ENI remains (hpc6id.32xlarge has 1 on its default card)', () => {
    const r = computeMaxPods(type('hpc6id.32xlarge'), opts({ customNetworking: true }));
    expect(r.enisForPods).toBe(0);
    expect(r.maxAllowed).toBe(2);
    expect(r.fallbacks.map((f) => f.kind)).toEqual(['no-pod-enis']);
    // Custom networking and a trunk never drive the count below zero.
    expect(
      computeMaxPods(type('hpc6id.32xlarge'), opts({ customNetworking: true, trunk: true })).maxAllowed,
    ).toBe(2);
  });
});
