import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_NETCONF_BYTES } from '../../../cni/netconf.js';
import { readNetconf } from '../../../cni/stdin.js';

const dir = mkdtempSync(join(tmpdir(), 'cni-stdin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Opens a file holding `content` as the plugin's stdin would be. */
function fdOf(name: string, content: string | Buffer): number {
  const path = join(dir, name);
  writeFileSync(path, content);
  return openSync(path, 'r');
}

/** Where the fd's offset is: how many bytes the reader consumed. */
function consumed(fd: number, size: number): number {
  const rest = Buffer.alloc(size);
  let left = 0;
  for (let n = readSync(fd, rest, 0, size, null); n > 0; n = readSync(fd, rest, 0, size, null)) left += n;
  return size - left;
}

describe('readNetconf (the Node plugin stdin)', () => {
  it('reads a configuration to its end', () => {
    const fd = fdOf('small', '{"cniVersion":"1.0.0"}');
    expect(readNetconf(fd)).toEqual({ stdin: '{"cniVersion":"1.0.0"}' });
    closeSync(fd);
  });

  it('reads exactly the limit', () => {
    const fd = fdOf('exact', Buffer.alloc(MAX_NETCONF_BYTES, 0x20));
    expect(readNetconf(fd).stdin).toHaveLength(MAX_NETCONF_BYTES);
    closeSync(fd);
  });

  it('stops one byte past the limit with code 7, without reading the rest', () => {
    const size = 8 * MAX_NETCONF_BYTES;
    const fd = fdOf('big', Buffer.alloc(size, 0x20));
    const r = readNetconf(fd);
    expect(r.stdin).toBeUndefined();
    expect(r.stdinError?.code).toBe(7);
    expect(r.stdinError?.message).toContain(`more than ${MAX_NETCONF_BYTES} bytes`);
    expect(consumed(fd, size)).toBe(MAX_NETCONF_BYTES + 1);
    closeSync(fd);
  });

  it('a smaller limit applies the same way', () => {
    const fd = fdOf('limit', 'abcdef');
    expect(readNetconf(fd, 5).stdinError?.code).toBe(7);
    closeSync(fd);
  });

  it('an unreadable stdin is code 5', () => {
    const fd = openSync(dir, 'r'); // a directory: read fails with EISDIR
    expect(readNetconf(fd).stdinError?.code).toBe(5);
    closeSync(fd);
  });
});
