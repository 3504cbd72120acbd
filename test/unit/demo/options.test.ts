import { describe, expect, it } from 'vitest';
import { defaultPodsPerNode, OptionError, parseOptions } from '../../../infra/local-vpc/demo/options.js';

describe('demo options', () => {
  it('defaults to 2 x m5.large with enough pods to spill onto a secondary ENI', () => {
    const o = parseOptions({});
    expect(o).toMatchObject({ instances: 2, instanceType: 'm5.large', keep: false, name: 'default' });
    // m5.large: 10 addresses per ENI, 9 for pods on the primary ENI; two more land on eth1.
    expect(defaultPodsPerNode('m5.large')).toBe(11);
    expect(o.pods).toBe(22);
  });

  it('scales the default pod count with the instance type and count', () => {
    expect(defaultPodsPerNode('m5.4xlarge')).toBe(31);
    expect(parseOptions({ instances: '3', instanceType: 'm5.4xlarge' }).pods).toBe(93);
    expect(parseOptions({ pods: '4' }).pods).toBe(4);
  });

  it('rejects bad values with the flag and the allowed range', () => {
    expect(() => parseOptions({ instances: '0' })).toThrow(
      /--instances: expected a whole number from 1 to 8/,
    );
    expect(() => parseOptions({ instances: 'two' })).toThrow(OptionError);
    expect(() => parseOptions({ pods: '-1' })).toThrow(/--pods/);
    expect(() => parseOptions({ pods: '251' })).toThrow(/1 to 250/);
    expect(() => parseOptions({ instanceType: 'm5.huge' })).toThrow(
      /"m5.huge" is not in the instance-type table/,
    );
    expect(() => parseOptions({ name: 'Bad Name' })).toThrow(/--name/);
    expect(() => parseOptions({ concurrency: '0' })).toThrow(/--concurrency/);
  });
});
