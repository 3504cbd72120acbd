import { describe, expect, it } from 'vitest';
import { MAX_NETCONF_BYTES, MAX_NETCONF_DEPTH, parseNetConf } from '../../../cni/netconf.js';
import { runCni } from '../../../cni/run.js';
import { codeOf } from './cni-error.js';

const conf = (over: Record<string, unknown> = {}) =>
  JSON.stringify({ cniVersion: '1.0.0', name: 'aws-cni', type: 'aws-cni', ...over });

describe('parseNetConf', () => {
  it('fills defaults', () => {
    const c = parseNetConf(conf(), 'ADD');
    expect(c).toMatchObject({
      cniVersion: '1.0.0',
      name: 'aws-cni',
      type: 'aws-cni',
      ipamdSocket: '/var/run/aws-node/vpc-cni.sock',
      pluginLogLevel: 'info',
      portMappings: [],
    });
    expect(c.pluginLogFile).toBeUndefined();
    expect(c.prevResult).toBeUndefined();
  });

  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])('accepts cniVersion %s', (v) => {
    expect(parseNetConf(conf({ cniVersion: v }), 'ADD').cniVersion).toBe(v);
  });

  it.each(['0.1.0', '0.2.0', '2.0.0', '1.0'])('rejects cniVersion %s with code 1', (v) => {
    const { code, message } = codeOf(() => parseNetConf(conf({ cniVersion: v }), 'ADD'));
    expect(code).toBe(1);
    expect(message).toContain('incompatible CNI version');
    expect(message).toContain(v);
  });

  it('STATUS and GC need 1.1.0', () => {
    expect(codeOf(() => parseNetConf(conf({ cniVersion: '1.0.0' }), 'STATUS')).code).toBe(1);
    expect(parseNetConf(conf({ cniVersion: '1.1.0' }), 'STATUS').cniVersion).toBe('1.1.0');
  });

  it('bad JSON is code 6', () => {
    expect(codeOf(() => parseNetConf('{"cniVersion": ', 'ADD')).code).toBe(6);
    expect(codeOf(() => parseNetConf('[1,2]', 'ADD')).code).toBe(6);
    expect(codeOf(() => parseNetConf('', 'ADD')).code).toBe(6);
  });

  it.each([
    [{ cniVersion: undefined }, 'cniVersion'],
    [{ cniVersion: 1 }, 'cniVersion'],
    [{ name: undefined }, 'name'],
    [{ name: 'has space' }, 'name'],
    [{ type: '' }, 'type'],
    [{ ipamdSocket: 'relative.sock' }, 'ipamdSocket'],
    [{ ipamdSocket: 5 }, 'ipamdSocket'],
    [{ pluginLogFile: 'log.txt' }, 'pluginLogFile'],
    [{ pluginLogLevel: 'loud' }, 'pluginLogLevel'],
    [{ runtimeConfig: [] }, 'runtimeConfig'],
    [{ prevResult: { ips: 'x' } }, 'prevResult'],
  ])('invalid field %j is code 7 naming it', (over, name) => {
    const { code, message } = codeOf(() => parseNetConf(conf(over), 'ADD'));
    expect(code).toBe(7);
    expect(message).toContain(name);
  });

  it('reads runtimeConfig and port mappings whatever the key case', () => {
    const c = parseNetConf(
      conf({
        RuntimeConfig: { ignored: true },
        runtimeConfig: {
          PortMappings: [
            { HostPort: 8080, ContainerPort: 80, Protocol: 'TCP' },
            { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
          ],
          Bandwidth: { IngressRate: 1000 },
        },
      }),
      'ADD',
    );
    expect(c.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
    ]);
    expect(c.runtimeConfig.bandwidth).toEqual({ ingressrate: 1000 });
  });

  it('rejects an out-of-range port mapping with code 7', () => {
    const bad = conf({ runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80 }] } });
    expect(codeOf(() => parseNetConf(bad, 'ADD')).message).toContain('hostPort');
  });

  it('parses a 0.4.0 prevResult into the neutral shape', () => {
    const c = parseNetConf(
      conf({
        cniVersion: '0.4.0',
        prevResult: {
          cniVersion: '0.4.0',
          interfaces: [
            { name: 'eni1', mac: '02:00:00:00:00:01' },
            { name: 'eth0', sandbox: '/var/run/netns/p' },
          ],
          ips: [{ version: '4', address: '10.0.0.5/32', interface: 1 }],
          routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
        },
      }),
      'DEL',
    );
    expect(c.prevResult).toEqual({
      interfaces: [
        { name: 'eni1', mac: '02:00:00:00:00:01' },
        { name: 'eth0', sandbox: '/var/run/netns/p' },
      ],
      ips: [{ address: '10.0.0.5/32', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }],
      dns: {},
    });
  });

  it('rejects a prevResult whose ip points past the interfaces', () => {
    const bad = conf({ prevResult: { interfaces: [], ips: [{ address: '10.0.0.5/32', interface: 0 }] } });
    expect(codeOf(() => parseNetConf(bad, 'DEL')).message).toMatch(/out of range/);
  });
});

describe('GC attachments', () => {
  const gc = (over: Record<string, unknown>) => parseNetConf(conf({ cniVersion: '1.1.0', ...over }), 'GC');

  it('reads cni.dev/valid-attachments', () => {
    const c = gc({ 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] });
    expect(c.validAttachments).toEqual([{ containerId: 'c1', ifName: 'eth0' }]);
  });

  it('reads the older cni.dev/attachments and any key case', () => {
    const c = gc({ 'cni.dev/attachments': [{ ContainerId: 'c2', IfName: 'net1' }] });
    expect(c.validAttachments).toEqual([{ containerId: 'c2', ifName: 'net1' }]);
  });

  it('leaves validAttachments undefined when absent, and [] when empty', () => {
    expect(gc({}).validAttachments).toBeUndefined();
    expect(gc({ 'cni.dev/valid-attachments': [] }).validAttachments).toEqual([]);
  });

  it('rejects malformed attachments with code 7', () => {
    expect(codeOf(() => gc({ 'cni.dev/valid-attachments': {} })).code).toBe(7);
    expect(codeOf(() => gc({ 'cni.dev/valid-attachments': [{ containerID: 'c1' }] })).code).toBe(7);
  });

  it('ignores attachments for commands other than GC', () => {
    const c = parseNetConf(
      conf({ 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }),
      'ADD',
    );
    expect(c.validAttachments).toBeUndefined();
  });
});

/** JSON text of `depth` levels of nested objects, {"a":{"a":...{}}} (JSON.stringify would overflow). */
const nested = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
/** conf() with one more key whose value is raw JSON text. */
const confWith = (key: string, json: string) => `${conf().slice(0, -1)},${JSON.stringify(key)}:${json}}`;

describe('nesting and size limits', () => {
  it.each(['runtimeConfig', 'prevResult', 'custom'])(
    'a %s nested 100,000 levels deep is code 7 naming the key, not a stack overflow',
    (key) => {
      const { code, message } = codeOf(() => parseNetConf(confWith(key, nested(100_000)), 'ADD'));
      expect(code).toBe(7);
      expect(message).toContain(`"${key}" is nested too deeply`);
      expect(message).toContain(String(MAX_NETCONF_DEPTH));
    },
  );

  it('accepts nesting up to the limit', () => {
    expect(parseNetConf(confWith('runtimeConfig', nested(MAX_NETCONF_DEPTH)), 'ADD').name).toBe('aws-cni');
    expect(
      codeOf(() => parseNetConf(confWith('runtimeConfig', nested(MAX_NETCONF_DEPTH + 1)), 'ADD')).code,
    ).toBe(7);
  });

  it('deep arrays count as nesting too', () => {
    const deep = `{"portMappings":${'['.repeat(5000)}${']'.repeat(5000)}}`;
    expect(codeOf(() => parseNetConf(confWith('runtimeConfig', deep), 'ADD')).code).toBe(7);
  });

  it('the whole call answers code 7 with the message, not 999', async () => {
    const out = await runCni({
      env: {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'c1',
        CNI_NETNS: '/x',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
      },
      stdin: confWith('runtimeConfig', nested(100_000)),
    });
    expect(out.exitCode).toBe(1);
    const answer = JSON.parse(out.stdout) as { code: number; msg: string };
    expect(answer.code).toBe(7);
    expect(answer.msg).toContain('nested too deeply');
  });

  it(`a configuration over ${MAX_NETCONF_BYTES} bytes of UTF-8 is code 7`, () => {
    const pad = (n: number) => conf({ pad: 'x'.repeat(n) });
    const fits = pad(MAX_NETCONF_BYTES - pad(0).length);
    expect(Buffer.byteLength(fits)).toBe(MAX_NETCONF_BYTES);
    expect(parseNetConf(fits, 'ADD').name).toBe('aws-cni');
    // Under the limit in UTF-16 units, over it in bytes.
    const wide = conf({ pad: 'é'.repeat(MAX_NETCONF_BYTES / 2) });
    expect(wide.length).toBeLessThan(MAX_NETCONF_BYTES);
    const { code, message } = codeOf(() => parseNetConf(wide, 'ADD'));
    expect(code).toBe(7);
    expect(message).toContain('too large');
  });
});
