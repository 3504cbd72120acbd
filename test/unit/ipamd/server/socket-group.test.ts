/**
 * IPAMD_SOCKET_GROUP: the socket is root:<group> 0660, so a process in that group (and only such a
 * process, besides root) can talk to ipamd. Checked with a real socket in a temp dir and real
 * clients running as an unprivileged uid with and without the group.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../../ipamd/config.js';
import { GroupError, resolveGroup } from '../../../../ipamd/server/group.js';
import type { IpamHandler } from '../../../../ipamd/server/handler.js';
import { type SocketServer, startSocketServer } from '../../../../ipamd/server/socket.js';

const log = pino({ level: 'silent' });
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const SOCKET_GID = 47_111;

const handler: IpamHandler = {
  add: () => Promise.reject(new Error('unused')),
  del: () => Promise.reject(new Error('unused')),
  gc: () => Promise.reject(new Error('unused')),
  health: async () => ({ ready: true, freeAddresses: 7 }),
};

/** Sends a health request as uid/gid; resolves with the reply line or the connect error code. */
function healthAs(path: string, uid: number, gid: number): Promise<string> {
  const script = `
    const s = require('node:net').connect(${JSON.stringify(path)});
    let out = '';
    s.on('connect', () => s.write('{"v":1,"op":"health"}\\n'));
    s.on('data', (d) => (out += d));
    s.on('end', () => { process.stdout.write(out.trim()); });
    s.on('error', (e) => { process.stdout.write(e.code); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { uid, gid, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('close', () => resolve(out));
  });
}

let dir: string;
let server: SocketServer | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipamd-group-'));
  // Unprivileged test clients must be able to reach the socket's directory.
  await chmod(dir, 0o711);
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('resolveGroup', () => {
  it('takes a numeric gid as is and looks names up in the group file', async () => {
    const file = join(dir, 'group');
    await writeFile(file, 'root:x:0:\ncni-users:x:4242:alice,bob\nbroken-line\nweird:x:abc:\n');
    expect(resolveGroup('4242', file)).toBe(4242);
    expect(resolveGroup('0', file)).toBe(0);
    expect(resolveGroup('cni-users', file)).toBe(4242);
    expect(resolveGroup('root', file)).toBe(0);
  });

  it('says what is wrong with an unknown name, a bad name, a bad gid or an unreadable file', async () => {
    const file = join(dir, 'group');
    await writeFile(file, 'root:x:0:\nweird:x:abc:\n');
    expect(() => resolveGroup('cni-users', file)).toThrow(
      `no group named "cni-users" in ${file}; create it on the node, or give its numeric gid`,
    );
    expect(() => resolveGroup('weird', file)).toThrow(/no group named "weird"/);
    expect(() => resolveGroup('a:b', file)).toThrow(/neither a numeric gid nor a valid group name/);
    expect(() => resolveGroup('4294967295', file)).toThrow(/out of range/);
    expect(() => resolveGroup('cni-users', join(dir, 'missing'))).toThrow(GroupError);
    expect(() => resolveGroup('cni-users', join(dir, 'missing'))).toThrow(/ENOENT.*give a numeric gid/);
  });
});

describe('IPAMD_SOCKET_GROUP in the configuration', () => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      loadConfig(env);
      return [];
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
  };

  it('unset keeps the root-only 0600 socket', () => {
    const c = loadConfig({});
    expect(c.socketGid).toBeNull();
    expect(c.socketMode).toBe(0o600);
  });

  it('a group name or gid switches the socket to 0660 owned by that group', () => {
    expect(loadConfig({ IPAMD_SOCKET_GROUP: 'root' })).toMatchObject({ socketGid: 0, socketMode: 0o660 });
    expect(loadConfig({ IPAMD_SOCKET_GROUP: '4242' })).toMatchObject({ socketGid: 4242, socketMode: 0o660 });
    expect(loadConfig({ IPAMD_SOCKET_GROUP: '4242', IPAMD_SOCKET_MODE: '0660' }).socketMode).toBe(0o660);
  });

  it('an unknown group, or a group with an explicit 0600, is a configuration error', () => {
    expect(problems({ IPAMD_SOCKET_GROUP: 'no-such-group-vpccni' })).toEqual([
      'IPAMD_SOCKET_GROUP="no-such-group-vpccni": no group named "no-such-group-vpccni" in /etc/group; create it on the node, or give its numeric gid',
    ]);
    expect(problems({ IPAMD_SOCKET_GROUP: '4242', IPAMD_SOCKET_MODE: '0600' })).toEqual([
      expect.stringMatching(/IPAMD_SOCKET_GROUP gives a group access .* IPAMD_SOCKET_MODE=0600 forbids/),
    ]);
  });
});

describe('socket owned by root:<group>', () => {
  it('refuses a group without mode 0660 and an impossible gid', async () => {
    const path = join(dir, 'run', 'ipamd.sock');
    await expect(startSocketServer({ path, gid: 4242, handler, log })).rejects.toThrow(
      'a socket group (gid 4242) needs mode 0660, got 0600',
    );
    await expect(startSocketServer({ path, mode: 0o660, gid: -1, handler, log })).rejects.toThrow(
      /socket group must be a gid/,
    );
  });

  it.runIf(isRoot)(
    'is 0660 root:<gid>; a client in the group is served, one outside it is refused',
    async () => {
      const path = join(dir, 'run', 'ipamd.sock');
      server = await startSocketServer({ path, mode: 0o660, gid: SOCKET_GID, handler, log });
      const st = await stat(path);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.uid).toBe(0);
      expect(st.gid).toBe(SOCKET_GID);

      const inGroup = JSON.parse(await healthAs(path, NOBODY, SOCKET_GID));
      expect(inGroup).toMatchObject({ ok: true, result: { ready: true, freeAddresses: 7 } });
      expect(await healthAs(path, NOBODY, SOCKET_GID + 1)).toBe('EACCES');
    },
  );

  it.runIf(isRoot)('without a group the same unprivileged client is refused (0600)', async () => {
    const path = join(dir, 'run', 'ipamd.sock');
    server = await startSocketServer({ path, handler, log });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await healthAs(path, NOBODY, SOCKET_GID)).toBe('EACCES');
  });
});
