/**
 * Debian's containerd invoking aws-cni: containerd's CRI needs a sandbox image that cannot be pulled
 * offline, so this uses `ctr run --cni`, which sets up the task's network through containerd's own
 * CNI library (go-cni/libcni, as the CRI plugin does) and tears it down when the task exits.
 * The image is built here: a static `pause` compiled with gcc, packed as an OCI layout.
 * containerd and ctr run with the test's node namespace as their network namespace (nsenter, so
 * cgroups stay visible to runc); /etc/cni/net.d and /opt/cni/bin exist only in ctr's private mount
 * namespace, as overlays. Addresses come from the ipamd TEST DOUBLE.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeIpamd } from './fake-ipamd.js';
import { Netns, PLUGIN, requireBuilt, runId } from './harness.js';

const TOOLS = ['containerd', 'ctr', 'runc', 'gcc', 'nsenter', 'unshare'];
const missing = TOOLS.filter((t) => {
  try {
    execFileSync('which', [t], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});

const id = runId();
const dir = `/tmp/vpccni-${id}-ctrd`;
const sock = join(dir, 'containerd.sock');
const ipamdSock = join(dir, 'ipamd.sock');
const IMAGE = 'docker.io/vpccni/pause:test';
let node: Netns;
let fake: FakeIpamd;
let containerd: ChildProcess | undefined;

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** A one-layer OCI image whose entrypoint is a static pause binary, as a tarball for `ctr import`. */
function buildImage(): string {
  const b = join(dir, 'image');
  const blobs = join(b, 'layout/blobs/sha256');
  mkdirSync(join(b, 'rootfs'), { recursive: true });
  mkdirSync(blobs, { recursive: true });
  writeFileSync(
    join(b, 'pause.c'),
    '#include <signal.h>\n#include <unistd.h>\nstatic void stop(int s) { (void)s; _exit(0); }\n' +
      'int main(void) { signal(SIGTERM, stop); signal(SIGINT, stop); for (;;) pause(); }\n',
  );
  execFileSync('gcc', ['-static', '-Os', '-o', join(b, 'rootfs/pause'), join(b, 'pause.c')]);
  execFileSync('tar', ['-C', join(b, 'rootfs'), '-cf', join(b, 'layer.tar'), 'pause']);
  const blob = (file: string) => {
    const digest = sha256(file);
    writeFileSync(join(blobs, digest), readFileSync(file));
    return { digest: `sha256:${digest}`, size: statSync(file).size };
  };
  const layer = blob(join(b, 'layer.tar'));
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/pause'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  };
  writeFileSync(join(b, 'config.json'), JSON.stringify(config));
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob(join(b, 'config.json')) },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  };
  writeFileSync(join(b, 'manifest.json'), JSON.stringify(manifest));
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        ...blob(join(b, 'manifest.json')),
        annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': 'test' },
        platform: { architecture: 'amd64', os: 'linux' },
      },
    ],
  };
  writeFileSync(join(b, 'layout/index.json'), JSON.stringify(index));
  writeFileSync(join(b, 'layout/oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  execFileSync('tar', ['-C', join(b, 'layout'), '-cf', join(b, 'image.tar'), '.']);
  return join(b, 'image.tar');
}

/** The CNI config and plugin directories ctr will see at their standard paths. */
function cniOverlays(): string {
  const etc = join(dir, 'etc-upper');
  const opt = join(dir, 'opt-upper');
  mkdirSync(join(etc, 'cni/net.d'), { recursive: true });
  mkdirSync(join(opt, 'cni/bin'), { recursive: true });
  mkdirSync(join(dir, 'etc-work'), { recursive: true });
  mkdirSync(join(dir, 'opt-work'), { recursive: true });
  writeFileSync(
    join(etc, 'cni/net.d/10-aws.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'aws-cni',
      plugins: [{ type: 'aws-cni', ipamdSocket: ipamdSock, pluginLogFile: join(dir, 'plugin.log') }],
    }),
  );
  symlinkSync(PLUGIN, join(opt, 'cni/bin/aws-cni'));
  symlinkSync('/usr/lib/cni/loopback', join(opt, 'cni/bin/loopback'));
  return [
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${etc},workdir=${dir}/etc-work /etc`,
    `mount -t overlay overlay -o lowerdir=/opt,upperdir=${opt},workdir=${dir}/opt-work /opt`,
  ].join(' && ');
}

let mounts = '';

/** ctr in the node's network namespace with the CNI overlays in its own mount namespace. */
function ctr(args: string[]): ChildProcess {
  const script = `${mounts} && exec nsenter --net=${node.path} ctr -a ${sock} -n vpccni "$@"`;
  return spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function ctrDone(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = ctr(args);
    let out = '';
    p.stdout!.on('data', (d) => {
      out += d;
    });
    p.stderr!.on('data', (d) => {
      out += d;
    });
    p.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

async function waitFor<T>(fn: () => T | undefined, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(missing.length > 0)('containerd (ctr run --cni) runs aws-cni', () => {
  beforeAll(async () => {
    requireBuilt();
    mkdirSync(dir, { recursive: true });
    node = Netns.create(`vpccni-${id}-cnode`);
    node.ip('addr', 'add', '192.168.250.1/32', 'dev', 'lo');
    fake = await new FakeIpamd({
      socketPath: ipamdSock,
      addresses: [{ address: '10.0.1.10', deviceNumber: 0, routeTable: 254 }],
    }).start();
    const image = buildImage();
    mounts = cniOverlays();
    writeFileSync(
      join(dir, 'containerd.toml'),
      [
        'version = 2',
        `root = "${dir}/root"`,
        `state = "${dir}/state"`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        `[grpc]\n  address = "${sock}"`,
        `[ttrpc]\n  address = "${sock}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/opt"`,
        '',
      ].join('\n'),
    );
    containerd = spawn(
      'nsenter',
      [`--net=${node.path}`, 'containerd', '--config', join(dir, 'containerd.toml')],
      {
        stdio: 'ignore',
      },
    );
    await waitFor(() => (existsSync(sock) ? true : undefined), 'containerd socket');
    const imported = await ctrDone(['image', 'import', '--snapshotter', 'native', image]);
    expect(imported.code, imported.out).toBe(0);
  });

  afterAll(async () => {
    await ctrDone(['task', 'kill', '-s', 'SIGKILL', 'web']).catch(() => undefined);
    if (containerd?.pid) process.kill(containerd.pid, 'SIGTERM');
    await fake?.stop();
    node?.delete();
    // containerd's snapshots are plain directories under dir (native snapshotter).
    rmSync(dir, { recursive: true, force: true });
  });

  it('sets the task up with a VPC address the node reaches, and releases it when the task ends', async () => {
    // Foreground run: ctr removes the task's network (CNI DEL) once the task exits.
    const run = ctr(['run', '--cni', '--rm', '--snapshotter', 'native', IMAGE, 'web']);
    let runOut = '';
    run.stdout!.on('data', (d) => {
      runOut += d;
    });
    run.stderr!.on('data', (d) => {
      runOut += d;
    });
    const exited = new Promise<number>((r) => run.on('close', (c) => r(c ?? -1)));
    await waitFor(() => (fake.assigned.size > 0 ? true : undefined), `CNI ADD (${runOut})`);
    const hostVeth = await waitFor(() => node.linkNames().find((n) => n.startsWith('eni')), 'host veth');
    expect(node.json('route', 'show', 'table', 'main')).toEqual([
      expect.objectContaining({ dst: '10.0.1.10', dev: hostVeth }),
    ]);
    await waitFor(
      () => (node.status('ping', ['-c1', '-W1', '10.0.1.10']) === 0 ? true : undefined),
      'ping to the task',
    );
    const add = fake.requests.find((r) => r.op === 'add');
    expect(add).toMatchObject({ network: 'aws-cni', ifName: 'eth0' });
    expect((add as { netns: string }).netns).toMatch(/^\/proc\/\d+\/ns\/net$/);

    const killed = await ctrDone(['task', 'kill', '-s', 'SIGTERM', 'web']);
    expect(killed.code, killed.out).toBe(0);
    expect(await exited, runOut).toBe(0);
    expect(fake.requests.some((r) => r.op === 'del')).toBe(true);
    expect(fake.assigned.size).toBe(0);
    expect(node.linkNames()).toEqual(['lo']);
    expect(node.rules().filter((r) => r.priority === 512)).toEqual([]);
  });
});
