import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hostVethName } from '../../../cni/veth-name.js';

describe('hostVethName', () => {
  it('is the prefix plus the first 11 hex digits of sha1("namespace.podname")', () => {
    // sha1("default.nginx") computed independently of the implementation's code path.
    const digest = createHash('sha1').update('default.nginx').digest('hex');
    const name = hostVethName('eni', {
      podNamespace: 'default',
      podName: 'nginx',
      containerId: 'c',
      ifName: 'eth0',
    });
    expect(name).toBe(`eni${digest.slice(0, 11)}`);
    expect(name).toHaveLength(14);
  });

  it('matches a known value (echo -n default.nginx | sha1sum)', () => {
    expect(
      hostVethName('eni', { podNamespace: 'default', podName: 'nginx', containerId: 'x', ifName: 'eth0' }),
    ).toBe('enic440f455693');
  });

  it('differs per pod and stays within 15 characters for a 4-character prefix', () => {
    const a = hostVethName('abcd', { podNamespace: 'ns', podName: 'a', containerId: 'c', ifName: 'eth0' });
    const b = hostVethName('abcd', { podNamespace: 'ns', podName: 'b', containerId: 'c', ifName: 'eth0' });
    expect(a).not.toBe(b);
    expect(a.length).toBeLessThanOrEqual(15);
  });

  it('falls back to container ID and interface outside Kubernetes', () => {
    const a = hostVethName('eni', { containerId: 'c1', ifName: 'eth0' });
    const b = hostVethName('eni', { containerId: 'c2', ifName: 'eth0' });
    expect(a).not.toBe(b);
    expect(a).toBe(`eni${createHash('sha1').update('c1.eth0').digest('hex').slice(0, 11)}`);
  });
});
