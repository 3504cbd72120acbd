/**
 * Who may use ipamd's socket, as the kernel reports the caller (SO_PEERCRED): with
 * IPAMD_SOCKET_GROUP a member of that group can connect, and may only ask for health; assigning,
 * releasing, garbage-collecting and running CNI calls (which act as root on the node) need root.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMissing, type Ipamd, Scenario } from './fixture.js';

const GROUP = 4242;
const NOBODY = 65534;

/** One request line sent by a process running as uid `NOBODY`, gid GROUP; its parsed answer. */
function asGroupMember(socketPath: string, req: Record<string, unknown>) {
  const script = `
    const s = require('node:net').connect(${JSON.stringify(socketPath)});
    let out = '';
    s.on('connect', () => s.write(${JSON.stringify(`${JSON.stringify({ v: 1, ...req })}\n`)}));
    s.on('data', (d) => (out += d));
    s.on('close', () => process.stdout.write(out));
    s.on('error', (e) => process.stdout.write(JSON.stringify({ connectError: e.code })));`;
  const r = spawnSync(process.execPath, ['-e', script], {
    uid: NOBODY,
    gid: GROUP,
    encoding: 'utf8',
    timeout: 10_000,
  });
  return JSON.parse(r.stdout.split('\n')[0]!) as { ok?: boolean; error?: { code: string; message: string } };
}

describe.skipIf(bundleMissing())('the ipamd socket and its callers', () => {
  let s: Scenario;
  let ipamd: Ipamd;
  beforeAll(async () => {
    s = await Scenario.create();
    const node = await s.launch('m5.large');
    ipamd = s.startIpamd(node, { IPAMD_SOCKET_GROUP: String(GROUP), IPAMD_SOCKET_MODE: '0660' });
    chmodSync(dirname(ipamd.socketPath), 0o755); // the test's run dir, so the member can reach the socket
    await ipamd.waitServing();
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('is root:group 0660, and a group member may ask for health and nothing else', () => {
    const st = statSync(ipamd.socketPath);
    expect({ mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).toEqual({ mode: 0o660, uid: 0, gid: GROUP });
    expect(asGroupMember(ipamd.socketPath, { op: 'health' })).toMatchObject({ ok: true });
    const refused = [
      { op: 'add', network: 'aws-cni', containerId: 'x', ifName: 'eth0', netns: '/var/run/netns/x' },
      { op: 'del', network: 'aws-cni', containerId: 'x', ifName: 'eth0' },
      { op: 'gc', network: 'aws-cni', valid: [] },
      { op: 'cni', env: { CNI_COMMAND: 'VERSION' } },
    ];
    for (const req of refused) {
      expect(asGroupMember(ipamd.socketPath, req), String(req.op)).toMatchObject({
        ok: false,
        error: {
          code: 'forbidden',
          message: expect.stringContaining(`op "${req.op}" needs root (the caller is uid ${NOBODY})`),
        },
      });
    }
    expect(ipamd.checkpoint().allocations).toEqual([]);
  });

  it('root may assign and release', async () => {
    const add = await ipamd.add('root-call');
    expect(add.ok).toBe(true);
    expect((await ipamd.del('root-call')).ok).toBe(true);
  });
});
