import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CniCallError,
  CniRuntime,
  findPlugin,
  type NodeExec,
  parseConfList,
  parsePluginError,
} from '../../../infra/local-vpc/demo/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'demo-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function executable(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
  return path;
}

const LIST = JSON.stringify({
  cniVersion: '1.0.0',
  name: 'aws-cni',
  plugins: [
    { type: 'aws-cni', ipamdSocket: '/run/x.sock' },
    { type: 'portmap', capabilities: { portMappings: true } },
  ],
});

const POD = {
  containerId: 'c1',
  netnsPath: '/var/run/netns/p1',
  ifName: 'eth0',
  podNamespace: 'default',
  podName: 'web-0',
};

describe('conflist parsing', () => {
  it('accepts the conflist ipamd writes', () => {
    const l = parseConfList(LIST, 'x.conflist');
    expect(l.name).toBe('aws-cni');
    expect(l.plugins.map((p) => p.type)).toEqual(['aws-cni', 'portmap']);
  });

  it('names the file and the field that is wrong', () => {
    expect(() => parseConfList('{', 'a.conflist')).toThrow(/a.conflist is not valid JSON/);
    expect(() => parseConfList('[]', 'a.conflist')).toThrow(/must hold a JSON object/);
    expect(() => parseConfList('{"name":"n","plugins":[{"type":"x"}]}', 'a')).toThrow(/"cniVersion"/);
    expect(() => parseConfList('{"cniVersion":"1.0.0","name":"n","plugins":[]}', 'a')).toThrow(/"plugins"/);
    expect(() => parseConfList('{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}', 'a')).toThrow(
      /plugins\[0\].type/,
    );
  });
});

describe('plugin lookup and errors', () => {
  it('finds the first executable on CNI_PATH', () => {
    const p = executable('findme');
    expect(findPlugin('findme', ['/nonexistent', dir])).toBe(p);
    expect(() => findPlugin('absent', [dir])).toThrow(/"absent" not found in CNI_PATH/);
  });

  it('reads the CNI error object a plugin prints', () => {
    expect(parsePluginError('{"code":11,"msg":"try later","details":"pool"}')).toEqual({
      code: 11,
      msg: 'try later',
      details: 'pool',
    });
    expect(parsePluginError('garbage')).toBeUndefined();
    expect(parsePluginError('{"msg":"x"}')).toBeUndefined();
  });
});

describe('CniRuntime', () => {
  executable('aws-cni');
  executable('portmap');
  const list = parseConfList(LIST, 'x');

  it('ADD runs the chain in order, feeding each result to the next as prevResult', async () => {
    const calls: { cmd: string; env: NodeJS.ProcessEnv; conf: Record<string, unknown> }[] = [];
    const exec: NodeExec = async (cmd, _args, opts) => {
      const conf = JSON.parse(opts.input) as Record<string, unknown>;
      calls.push({ cmd, env: opts.env, conf });
      const n = calls.length;
      return {
        code: 0,
        stderr: '',
        stdout: JSON.stringify({ ips: [{ address: `10.0.0.${n}/32` }], step: n }),
      };
    };
    const rt = new CniRuntime(list, [dir], exec, '/usr/bin');
    const result = await rt.add(POD);
    expect(calls.map((c) => c.cmd)).toEqual([join(dir, 'aws-cni'), join(dir, 'portmap')]);
    expect(calls[0]!.conf).toMatchObject({ type: 'aws-cni', name: 'aws-cni', cniVersion: '1.0.0' });
    expect(calls[0]!.conf.prevResult).toBeUndefined();
    expect(calls[1]!.conf.prevResult).toMatchObject({ step: 1 });
    expect(calls[0]!.env).toMatchObject({
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '/var/run/netns/p1',
      CNI_IFNAME: 'eth0',
      CNI_PATH: dir,
    });
    expect(calls[0]!.env.CNI_ARGS).toContain('K8S_POD_NAME=web-0');
    expect(result).toMatchObject({ step: 2 });
  });

  it('DEL runs in reverse with the cached result, and runs every plugin even when one fails', async () => {
    const order: string[] = [];
    const exec: NodeExec = async (cmd, _args, opts) => {
      order.push(cmd.split('/').pop()!);
      expect(JSON.parse(opts.input).prevResult).toEqual({ cached: true });
      if (cmd.endsWith('portmap')) return { code: 1, stderr: '', stdout: '{"code":999,"msg":"boom"}' };
      return { code: 0, stderr: '', stdout: '' };
    };
    const rt = new CniRuntime(list, [dir], exec, '/usr/bin');
    await expect(rt.del(POD, { cached: true })).rejects.toThrow(/DEL portmap: boom/);
    expect(order).toEqual(['portmap', 'aws-cni']);
  });

  it('reports the plugin error code; code 11 is retryable', async () => {
    const exec: NodeExec = async () => ({
      code: 1,
      stderr: '',
      stdout: '{"code":11,"msg":"no free address","details":"the pool is growing"}',
    });
    const err = await new CniRuntime(list, [dir], exec, '/usr/bin').add(POD).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniCallError);
    expect((err as CniCallError).code).toBe(11);
    expect((err as CniCallError).retryable).toBe(true);
    expect((err as Error).message).toBe('ADD aws-cni: no free address (the pool is growing)');
  });

  it('rejects a result that is not JSON', async () => {
    const exec: NodeExec = async () => ({ code: 0, stderr: '', stdout: 'hello' });
    await expect(new CniRuntime(list, [dir], exec, '/usr/bin').add(POD)).rejects.toThrow(/not JSON: hello/);
  });
});
