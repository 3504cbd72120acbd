import { describe, expect, it } from 'vitest';
import { allInstanceTypes, lookupInstanceType } from '../../../lib/instance-types/index.js';
import { computeMaxPods } from '../../../maxpods/compute.js';
import { parseCniVersion } from '../../../maxpods/version.js';
import { readReferenceTable } from './reference-table.js';

describe('conformance with eni-max-pods.tsv (secondary-IP, --show-max-allowed)', () => {
  const reference = readReferenceTable();
  const options = {
    cniVersion: parseCniVersion('1.18.3'),
    customNetworking: false,
    prefixDelegation: false,
    trunk: false,
  };

  it('covers every type of the table and nothing else', () => {
    expect(reference.size).toBe(1391);
    expect([...reference.keys()].sort()).toEqual(allInstanceTypes().map((t) => t.name));
  });

  it('gives the reference value for all 1391 types', () => {
    const mismatches: string[] = [];
    for (const [name, expected] of reference) {
      const limits = lookupInstanceType(name);
      const got = limits ? computeMaxPods(limits, options).maxAllowed : undefined;
      if (got !== expected) mismatches.push(`${name}: expected ${expected}, got ${got}`);
    }
    expect(mismatches).toEqual([]);
  });
});
