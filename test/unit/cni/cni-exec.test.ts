/**
 * ipamd's executor for forwarded CNI calls: calls for one container run one after another, calls for
 * different containers overlap, and ipamd's errors reach the runtime as the socket client maps them.
 */
import { fstatSync } from 'node:fs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { CniExecutor } from '../../../ipamd/cni-exec.js';
import { createLogger } from '../../../ipamd/log.js';
import type { IpamHandler } from '../../../ipamd/server/handler.js';
import { sys } from '../../../lib/net/sys.js';
import { type HealthResult, ProtocolError } from '../../../lib/protocol/ipamd.js';

const log = createLogger('silent');
const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'aws-cni', type: 'aws-cni' });

/** An ipamd whose health() answers only when the test says so. */
function gatedIpam() {
  const waiting: ((h: HealthResult) => void)[] = [];
  const ipam: IpamHandler = {
    add: () => Promise.reject(new ProtocolError('pool_empty', 'growing')),
    del: () =>
      Promise.resolve({
        address: null,
        deviceNumber: null,
        routeTable: null,
        hostVethMac: null,
        heldByOthers: [],
      }),
    gc: () => Promise.resolve({ released: [] }),
    health: () => new Promise<HealthResult>((r) => waiting.push(r)),
  };
  return { ipam, waiting };
}

const status = (containerId: string) => ({
  v: 1,
  op: 'cni' as const,
  env: { CNI_COMMAND: 'STATUS', CNI_CONTAINERID: containerId },
  stdin: conf,
});

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('CniExecutor', () => {
  // The handlers module is imported on first use; load it once so timing below is the executor's.
  beforeAll(() => import('../../../cni/plugin.js'));

  it('runs calls for the same container one after another', async () => {
    const { ipam, waiting } = gatedIpam();
    const exec = new CniExecutor(ipam, log);
    const first = exec.run(status('same'));
    const second = exec.run(status('same'));
    await vi.waitFor(() => expect(waiting).toHaveLength(1));
    await tick();
    expect(waiting).toHaveLength(1);
    waiting[0]!({ ready: true, freeAddresses: 3 });
    expect(await first).toEqual({ exitCode: 0, stdout: '' });
    await vi.waitFor(() => expect(waiting).toHaveLength(2));
    waiting[1]!({ ready: false, reason: 'starting', freeAddresses: 0 });
    const out = await second;
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 50, msg: 'ipamd is not ready' });
    await tick();
    expect(exec.busyContainers).toBe(0);
  });

  it('lets calls for different containers overlap', async () => {
    const { ipam, waiting } = gatedIpam();
    const exec = new CniExecutor(ipam, log);
    const calls = [exec.run(status('a')), exec.run(status('b'))];
    await vi.waitFor(() => expect(waiting).toHaveLength(2));
    for (const w of waiting) w({ ready: true, freeAddresses: 1 });
    expect(await Promise.all(calls)).toEqual([
      { exitCode: 0, stdout: '' },
      { exitCode: 0, stdout: '' },
    ]);
  });

  const add = {
    v: 1,
    op: 'cni' as const,
    env: {
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: 'p',
      CNI_NETNS: '/var/run/netns/p',
      CNI_IFNAME: 'ethtest9',
      CNI_PATH: '/usr/lib/cni',
    },
    stdin: conf,
  };

  it('refuses a call for a pod namespace that carries no socket for it (an older shim falls back)', async () => {
    const { ipam } = gatedIpam();
    await expect(new CniExecutor(ipam, log).run(add)).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringContaining('netlink socket the aws-cni shim passes'),
    });
  });

  it("refuses the node's own namespace with code 4 before asking ipamd", async () => {
    const { ipam } = gatedIpam();
    const asked = vi.spyOn(ipam, 'add');
    // A netlink socket made here lives in this process's (the node's) namespace.
    const fd = sys().nlOpen();
    const out = await new CniExecutor(ipam, log).run({ ...add, netnsFd: 1 }, [fd]);
    expect(out.exitCode).toBe(1);
    expect(JSON.parse(out.stdout)).toMatchObject({
      code: 4,
      msg: "cannot use the pod's network namespace /var/run/netns/p",
      details: expect.stringContaining("it is the node's own network namespace"),
    });
    expect(asked).not.toHaveBeenCalled();
    // The executor closed the socket it was handed.
    expect(() => fstatSync(fd)).toThrow(/EBADF/);
  });

  it('DEL of a namespace the shim found gone releases the address and succeeds', async () => {
    const { ipam } = gatedIpam();
    const released = vi.spyOn(ipam, 'del');
    const out = await new CniExecutor(ipam, log).run({
      ...add,
      env: { ...add.env, CNI_COMMAND: 'DEL' },
      netnsErrno: 'ENOENT',
    });
    expect(out).toEqual({ exitCode: 0, stdout: '' });
    expect(released).toHaveBeenCalledWith(
      expect.objectContaining({ containerId: 'p', ifName: 'ethtest9', network: 'aws-cni' }),
    );
  });

  it('answers config errors without asking ipamd', async () => {
    const { ipam, waiting } = gatedIpam();
    const out = await new CniExecutor(ipam, log).run({ ...status('x'), stdin: 'not json' });
    expect(JSON.parse(out.stdout)).toMatchObject({ code: 6 });
    expect(waiting).toHaveLength(0);
  });
});
