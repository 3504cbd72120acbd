import { describe, expect, it } from 'vitest';
import { cniSupportsPrefixDelegation, parseCniVersion } from '../../../maxpods/version.js';

describe('CNI version', () => {
  it.each([
    ['1.7.5', false],
    ['1.8.0', false],
    ['1.8.99', false],
    ['1.9.0', true],
    ['1.10.0', true],
    ['1.18.3', true],
    ['2.0.0', true],
    ['0.9.0', false],
    ['1.9', true],
    ['1.8', false],
    ['v1.18.3-eksbuild.1', true],
    ['v1.8.0-eksbuild.2', false],
    ['1.12.0+build.7', true],
  ])('%s supports prefix delegation: %s', (raw, expected) => {
    expect(cniSupportsPrefixDelegation(parseCniVersion(raw))).toBe(expected);
  });

  it('parses the numbers, not the text (1.10 is newer than 1.9)', () => {
    expect(parseCniVersion('1.10.2')).toEqual({ raw: '1.10.2', major: 1, minor: 10, patch: 2 });
    expect(parseCniVersion('v2.3')).toEqual({ raw: 'v2.3', major: 2, minor: 3, patch: null });
  });

  it.each(['', '1', 'latest', '1.x', '1.9.0.1', 'v', '1..9', '-1.9', '1.9-', 'V1.9'])(
    'rejects %j with an example of a good one',
    (raw) => {
      expect(() => parseCniVersion(raw)).toThrow(/is not a version; use MAJOR.MINOR\[.PATCH\], e.g. 1.18.3/);
    },
  );
});
