/** The `cni` op of the ipamd protocol: what the shim may forward, and the frame it gets back. */
import { describe, expect, it } from 'vitest';
import {
  CNI_FRAME_PREFIX,
  cniFrame,
  MAX_CNI_ENV_VARS,
  ProtocolError,
  parseRequest,
} from '../../../lib/protocol/ipamd.js';

const line = (o: Record<string, unknown>) => JSON.stringify({ v: 1, op: 'cni', ...o });

function refusal(o: Record<string, unknown>): ProtocolError {
  try {
    parseRequest(line(o));
  } catch (err) {
    return err as ProtocolError;
  }
  throw new Error('request was accepted');
}

describe('cni op validation', () => {
  it('accepts CNI_* variables and the netconf', () => {
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc', CNI_NETNS: '/var/run/netns/x', CNI_ARGS: '' };
    expect(parseRequest(line({ env, stdin: '{"a":1}' }))).toEqual({ v: 1, op: 'cni', env, stdin: '{"a":1}' });
  });

  it('keeps a missing stdin missing (VERSION without a config)', () => {
    expect(parseRequest(line({ env: { CNI_COMMAND: 'VERSION' } }))).toEqual({
      v: 1,
      op: 'cni',
      env: { CNI_COMMAND: 'VERSION' },
    });
  });

  it.each([
    [{ env: { PATH: '/bin' } }, /env key "PATH" is not a CNI_\* variable/],
    [{ env: { CNI_command: 'ADD' } }, /env key "CNI_command"/],
    [{ env: { LD_PRELOAD: '/x.so' } }, /not a CNI_\*/],
    [{ env: { CNI_ARGS: 7 } }, /env.CNI_ARGS must be a string/],
    [{ env: { CNI_ARGS: 'x'.repeat(4097) } }, /at most 4096 bytes/],
    [{ env: ['CNI_COMMAND=ADD'] }, /"env" must be an object/],
    [{}, /"env" must be an object/],
    [{ env: {}, stdin: { cniVersion: '1.0.0' } }, /"stdin" must be a string/],
  ])('refuses %j', (req, message) => {
    const err = refusal(req);
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.code).toBe('bad_request');
    expect(err.message).toMatch(message);
  });

  it('refuses more than the allowed number of variables', () => {
    const env = Object.fromEntries(
      Array.from({ length: MAX_CNI_ENV_VARS + 1 }, (_, i) => [`CNI_X${i}`, 'v']),
    );
    expect(refusal({ env }).message).toMatch(`more than ${MAX_CNI_ENV_VARS} variables`);
  });

  it('refuses a request over the size limit before parsing it', () => {
    expect(refusal({ env: {}, stdin: 'x'.repeat(70 * 1024) }).message).toMatch(/larger than/);
  });
});

describe('cni frame', () => {
  it('is the fixed header the shim matches, then stdout verbatim', () => {
    const stdout = '{"cniVersion":"1.0.0","code":6,"msg":"x"}\n';
    const frame = cniFrame({ exitCode: 1, stdout });
    expect(frame).toBe(`${CNI_FRAME_PREFIX}1}}\n${stdout}`);
    // The header is a valid protocol response line on its own.
    expect(JSON.parse(frame.slice(0, frame.indexOf('\n')))).toEqual({
      v: 1,
      ok: true,
      result: { exitCode: 1 },
    });
  });

  it('matches the prefix compiled into the shim', async () => {
    const { readFileSync } = await import('node:fs');
    const c = readFileSync(new URL('../../../native/cni-shim/shim.c', import.meta.url), 'utf8');
    const m = /#define FRAME "((?:[^"\\]|\\.)*)"/.exec(c);
    expect(m).not.toBeNull();
    expect(JSON.parse(`"${m![1]}"`)).toBe(CNI_FRAME_PREFIX);
  });

  it.each([-1, 256, 1.5])('refuses exit code %s', (exitCode) => {
    expect(() => cniFrame({ exitCode, stdout: '' })).toThrow(/not 0-255/);
  });
});
