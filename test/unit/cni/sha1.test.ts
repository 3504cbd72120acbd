import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha1Hex } from '../../../cni/sha1.js';

describe('sha1Hex', () => {
  it('matches the published test vectors', () => {
    expect(sha1Hex('')).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709');
    expect(sha1Hex('abc')).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
    expect(sha1Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe(
      '84983e441c3bd26ebaae4aa1f95129e5e54670f1',
    );
  });

  it('matches node:crypto around every padding boundary and for non-ASCII text', () => {
    const inputs = [55, 56, 57, 63, 64, 65, 119, 120, 128, 1000].map((n) => 'x'.repeat(n));
    inputs.push('kube-system.coredns-6d4b75cb6d-x2x8f', 'ns.pöd-名前');
    for (const s of inputs) expect(sha1Hex(s)).toBe(createHash('sha1').update(s).digest('hex'));
  });
});
