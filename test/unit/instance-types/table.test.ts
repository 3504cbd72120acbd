import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import {
  allInstanceTypes,
  instanceFamily,
  instanceTypesInFamily,
  lookupInstanceType,
  reportsNitroHypervisor,
  supportsPrefixDelegation,
} from '../../../lib/instance-types/index.js';
import {
  type InstanceTypeJson,
  renderDataModule,
  validateInstanceTypes,
} from '../../../scripts/gen-instance-types.mjs';

const SEED = 'lib/instance-types/seed/instance-types.json';
const seed = JSON.parse(readFileSync(SEED, 'utf8')) as InstanceTypeJson;

describe('generated instance-type table', () => {
  it('holds exactly the seed types, every field equal', () => {
    const all = allInstanceTypes();
    expect(all).toHaveLength(1391);
    expect(all.map((t) => t.name)).toEqual(Object.keys(seed).sort());
    for (const t of all) {
      const s = seed[t.name]!;
      expect(t, t.name).toEqual({
        name: t.name,
        enis: s.enis,
        ipv4PerEni: s.ipv4PerEni,
        networkCards: s.networkCards
          .map((c) => ({ index: c.networkCardIndex, maxEnis: c.maximumNetworkInterfaces }))
          .sort((a, b) => a.index - b.index),
        defaultNetworkCardIndex: s.defaultNetworkCardIndex,
        hypervisor: s.hypervisor,
        bareMetal: s.bareMetal,
        vcpus: s.vcpus,
      });
    }
  });

  it('gives the same limits through the single-line lookup as through the full table', async () => {
    // A fresh copy of the module has not parsed its whole table yet, so it takes the one-line path.
    vi.resetModules();
    const fresh = await import('../../../lib/instance-types/index.js');
    // First, last, multi-card and unknown-vCPU lines.
    for (const name of ['a1.2xlarge', 'c6in.32xlarge', 'p5.48xlarge', 'mac-m4max.metal', 'z1d.xlarge']) {
      const one = fresh.lookupInstanceType(name);
      expect(one, name).toEqual(allInstanceTypes().find((t) => t.name === name));
    }
    for (const name of ['m5', 'm5.larg', 'M5.LARGE', 'm5.large"', 'a1.2xlarge",']) {
      expect(fresh.lookupInstanceType(name), name).toBeUndefined();
    }
    expect(lookupInstanceType('p5.48xlarge')!.networkCards).toHaveLength(32);
    expect(lookupInstanceType('mac-m4max.metal')!.vcpus).toBeNull();
  });

  it('does not match partial names, other cases or odd input', () => {
    for (const name of [
      'm5',
      'm5.larg',
      '5.large',
      'M5.LARGE',
      '',
      ' m5.large',
      'm5.large 3',
      'm5.large\n',
    ]) {
      expect(lookupInstanceType(name), JSON.stringify(name)).toBeUndefined();
    }
  });

  it('is up to date with the seed (gen --check)', () => {
    const out = execFileSync(process.execPath, ['scripts/gen-instance-types.mjs', SEED, '--check'], {
      encoding: 'utf8',
    });
    expect(out).toContain('up to date (1391 instance types)');
    expect(renderDataModule(seed, 'instance-types.json')).toBe(
      readFileSync('lib/instance-types/data.generated.ts', 'utf8'),
    );
  });
});

describe('families and Nitro rules', () => {
  it('splits the family off the name', () => {
    expect(instanceFamily('m5.large')).toBe('m5');
    expect(instanceFamily('u-6tb1.metal')).toBe('u-6tb1');
    expect(instanceTypesInFamily('m5').map((t) => t.name)).toEqual([
      'm5.12xlarge',
      'm5.16xlarge',
      'm5.24xlarge',
      'm5.2xlarge',
      'm5.4xlarge',
      'm5.8xlarge',
      'm5.large',
      'm5.metal',
      'm5.xlarge',
    ]);
    expect(instanceTypesInFamily('nope')).toEqual([]);
  });

  it('lets ipamd use prefixes on bare metal while the AMI rule needs a nitro hypervisor', () => {
    const metal = lookupInstanceType('m5.metal')!;
    expect(metal.hypervisor).toBe('unknown');
    expect(supportsPrefixDelegation(metal)).toBe(true);
    expect(reportsNitroHypervisor(metal)).toBe(false);
    const xen = lookupInstanceType('m4.large')!;
    expect(supportsPrefixDelegation(xen)).toBe(false);
    expect(reportsNitroHypervisor(xen)).toBe(false);
    const nitro = lookupInstanceType('m5.large')!;
    expect(supportsPrefixDelegation(nitro)).toBe(true);
    expect(reportsNitroHypervisor(nitro)).toBe(true);
  });
});

describe('validateInstanceTypes', () => {
  const good = () => structuredClone(seed['m5.large']!);

  it('accepts the seed', () => {
    expect(() => validateInstanceTypes(seed)).not.toThrow();
  });

  it('names every problem with its type and field', () => {
    const noCards = { ...good(), networkCards: [] };
    const badEnis = { ...good(), enis: 0 };
    const mismatch = { ...good(), enis: 4 };
    const hv = { ...good(), hypervisor: 'kvm' };
    const err = (() => {
      try {
        validateInstanceTypes({ 'a.large': noCards, 'b.large': badEnis, 'c.large': mismatch, 'd.large': hv });
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(err).toMatch(/a\.large: networkCards must be a non-empty array/);
    expect(err).toMatch(/b\.large: enis must be an integer >= 1, got 0/);
    expect(err).toMatch(
      /c\.large: enis \(4\) differs from the default card's maximumNetworkInterfaces \(3\)/,
    );
    expect(err).toMatch(/d\.large: hypervisor must be nitro\|xen\|unknown, got "kvm"/);
  });

  it('rejects a non-object and bad names', () => {
    expect(() => validateInstanceTypes([])).toThrow(/object keyed by instance type name/);
    expect(() => validateInstanceTypes({ 'no dot': good() })).toThrow(/not an instance type name/);
  });
});
