/**
 * The socket's own ops (add, del, gc) validate what the CNI path validates (cni/env.ts,
 * cni/netconf.ts), so a raw client cannot get an address under a key the plugin would have refused;
 * and the `cni` op's fields for the pod's namespace.
 */
import { describe, expect, it } from 'vitest';
import { type ProtocolError, parseRequest } from '../../../lib/protocol/ipamd.js';
import { ifNameProblem } from '../../../lib/protocol/names.js';

const add = (o: Record<string, unknown>) =>
  JSON.stringify({
    v: 1,
    op: 'add',
    network: 'aws-cni',
    containerId: 'abc123',
    ifName: 'eth0',
    netns: '/var/run/netns/cni-1',
    ...o,
  });

function refusal(line: string): ProtocolError {
  try {
    parseRequest(line);
  } catch (err) {
    return err as ProtocolError;
  }
  throw new Error(`accepted: ${line}`);
}

describe('socket op validation', () => {
  it('accepts what a runtime sends', () => {
    expect(parseRequest(add({ podNamespace: 'default', podName: 'web-0' }))).toMatchObject({
      op: 'add',
      containerId: 'abc123',
      podName: 'web-0',
    });
  });

  it.each([
    [{ network: 'bad\ufffdname' }, /field "network" must be a CNI network name/],
    [{ network: '-leading' }, /field "network"/],
    [{ containerId: 'x/../y' }, /field "containerId" must be a CNI container id/],
    [{ containerId: '.hidden' }, /field "containerId"/],
    [{ netns: '/x\u0000y' }, /field "netns" may not contain NUL/],
    [{ netns: 'relative/path' }, /field "netns" must be an absolute path/],
    [{ ifName: 'eth0:1' }, /field "ifName" may not contain/],
    [{ ifName: 'é'.repeat(9) }, /field "ifName" is longer than 15 bytes \(18 in UTF-8\)/],
    [{ podName: 'a\nb' }, /field "podName" contains control characters/],
  ])('refuses add %j', (over, message) => {
    const err = refusal(add(over));
    expect(err.code).toBe('bad_request');
    expect(err.message).toMatch(message);
  });

  it('counts an interface name in bytes, as the kernel does', () => {
    expect(ifNameProblem('eth0')).toBeUndefined();
    expect(ifNameProblem('a'.repeat(15))).toBeUndefined();
    expect(ifNameProblem('a'.repeat(16))).toMatch(/\(16 in UTF-8\)/);
    expect(ifNameProblem('ü'.repeat(8))).toMatch(/\(16 in UTF-8\)/); // 8 characters, 16 bytes
  });

  it('del takes at most 16 IPv4 addresses from prevResult', () => {
    const del = (addresses: unknown) =>
      JSON.stringify({ v: 1, op: 'del', network: 'aws-cni', containerId: 'c', ifName: 'eth0', addresses });
    expect(parseRequest(del(['10.0.1.5']))).toMatchObject({ addresses: ['10.0.1.5'] });
    expect(refusal(del(['10.0.1.256'])).message).toMatch(/field "addresses"/);
    expect(refusal(del(Array(17).fill('10.0.1.5'))).message).toMatch(/at most 16/);
    expect(refusal(del('10.0.1.5')).message).toMatch(/field "addresses"/);
  });

  it('gc takes force only as a boolean', () => {
    const gc = (o: Record<string, unknown>) =>
      JSON.stringify({ v: 1, op: 'gc', network: 'aws-cni', valid: [], ...o });
    expect(parseRequest(gc({ force: true }))).toMatchObject({ force: true });
    expect(parseRequest(gc({}))).not.toHaveProperty('force');
    expect(refusal(gc({ force: 'yes' })).message).toMatch(/"force" must be a boolean/);
  });

  it('cni says how the pod namespace travels: a passed socket or the errno opening it', () => {
    const cni = (o: Record<string, unknown>) =>
      JSON.stringify({ v: 1, op: 'cni', env: { CNI_COMMAND: 'ADD', CNI_NETNS: '/var/run/netns/x' }, ...o });
    expect(parseRequest(cni({ netnsFd: 1 }))).toMatchObject({ netnsFd: 1 });
    expect(parseRequest(cni({ netnsErrno: 'ENOENT' }))).toMatchObject({ netnsErrno: 'ENOENT' });
    expect(refusal(cni({ netnsFd: 2 })).message).toMatch(/"netnsFd" must be 1/);
    expect(refusal(cni({ netnsErrno: 'no such' })).message).toMatch(/errno name/);
  });
});
