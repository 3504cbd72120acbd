import { describe, expect, it } from 'vitest';
import { parseCniArgs, parseEnv, validateIfName } from '../../../cni/env.js';
import { codeOf } from './cni-error.js';

const base = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/var/run/netns/pod1',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123',
};

describe('parseEnv', () => {
  it('reads a complete ADD environment', () => {
    const env = parseEnv(base);
    expect(env).toMatchObject({
      command: 'ADD',
      containerId: 'abc123',
      netns: '/var/run/netns/pod1',
      ifName: 'eth0',
      path: ['/opt/cni/bin', '/usr/lib/cni'],
      podNamespace: 'default',
      podName: 'web-0',
    });
    expect(env.args.IgnoreUnknown).toBe('1');
  });

  it.each([
    ['ADD', 'CNI_CONTAINERID'],
    ['ADD', 'CNI_NETNS'],
    ['ADD', 'CNI_IFNAME'],
    ['ADD', 'CNI_PATH'],
    ['CHECK', 'CNI_NETNS'],
    ['DEL', 'CNI_CONTAINERID'],
    ['DEL', 'CNI_IFNAME'],
  ])('%s without %s is code 4 naming the variable', (command, name) => {
    const env: Record<string, string | undefined> = { ...base, CNI_COMMAND: command };
    delete env[name];
    const { code, message } = codeOf(() => parseEnv(env));
    expect(code).toBe(4);
    expect(message).toContain(name);
  });

  it('DEL does not need CNI_NETNS (the runtime may have lost the namespace)', () => {
    const env = parseEnv({ ...base, CNI_COMMAND: 'DEL', CNI_NETNS: '' });
    expect(env.netns).toBe('');
  });

  it('STATUS and GC need no container variables', () => {
    expect(parseEnv({ CNI_COMMAND: 'STATUS' }).command).toBe('STATUS');
    expect(parseEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }).command).toBe('GC');
  });

  it('rejects a missing or unknown CNI_COMMAND with code 4', () => {
    expect(codeOf(() => parseEnv({})).code).toBe(4);
    const { code, message } = codeOf(() => parseEnv({ ...base, CNI_COMMAND: 'ATTACH' }));
    expect(code).toBe(4);
    expect(message).toContain('ATTACH');
  });

  it.each([
    ['CNI_CONTAINERID', '-starts-with-dash'],
    ['CNI_CONTAINERID', 'has space'],
    ['CNI_NETNS', 'relative/path'],
    ['CNI_IFNAME', 'averyveryverylongname'],
    ['CNI_IFNAME', 'eth/0'],
    ['CNI_IFNAME', '..'],
    ['CNI_ARGS', 'K8S_POD_NAME'],
  ])('rejects %s=%j with code 4', (name, value) => {
    expect(codeOf(() => parseEnv({ ...base, [name]: value })).code).toBe(4);
  });
});

describe('parseCniArgs', () => {
  it('keeps values containing "="', () => {
    expect(parseCniArgs('A=b=c;D=')).toEqual({ A: 'b=c', D: '' });
  });
  it('tolerates a trailing separator and empty input', () => {
    expect(parseCniArgs('A=1;')).toEqual({ A: '1' });
    expect(parseCniArgs(undefined)).toEqual({});
  });
});

describe('validateIfName', () => {
  it('accepts 15 characters and rejects 16', () => {
    expect(validateIfName('a'.repeat(15))).toBeUndefined();
    expect(validateIfName('a'.repeat(16))).toMatch(/longer than 15/);
  });

  it('counts UTF-8 bytes, as the kernel does (IFNAMSIZ), not UTF-16 units', () => {
    const name = 'é'.repeat(9); // 9 UTF-16 units, 18 UTF-8 bytes
    expect(name.length).toBeLessThanOrEqual(15);
    expect(validateIfName(name)).toMatch(/longer than 15 bytes \(18 in UTF-8\)/);
    expect(validateIfName('é'.repeat(7) + 'x')).toBeUndefined(); // 15 bytes
  });

  it('an 18-byte UTF-8 CNI_IFNAME is code 4 naming the variable', () => {
    const { code, message } = codeOf(() => parseEnv({ ...base, CNI_IFNAME: 'eth€€€€€' }));
    expect(code).toBe(4);
    expect(message).toContain('CNI_IFNAME');
    expect(message).toContain('18 in UTF-8');
  });
});
