/**
 * Debian's containerd (1.6) running in a node as a kubelet node runs it: in the instance's network
 * namespace and the node's mount namespace, its CRI plugin exec'ing the CNI plugins from the node's
 * /opt/cni/bin with the first conflist in the node's /etc/cni/net.d. The config is the test's own
 * (root and state in the node's directories, sockets under the node's /run), with
 * `restrict_oom_score_adj` because these machines deny lowering oom_score_adj, and the offline
 * sandbox image as the CRI's pause image.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CriClient } from './cri-api.js';
import { type NodeHost, sleep } from './host.js';
import { SANDBOX_IMAGE } from './sandbox-image.js';

/** The k8s.io namespace is where the CRI plugin keeps its images and containers. */
export const CRI_NAMESPACE = 'k8s.io';

export interface ContainerdOptions {
  /** The CNI config directory the CRI plugin reads (a node path); default /etc/cni/net.d. */
  cniConfDir?: string;
  /** Debug logging (containerd's stderr goes to <node>/containerd.log). */
  debug?: boolean;
}

export class Containerd {
  /** The CRI/containerd socket, as a node path and as the test reaches it. */
  readonly socket = '/run/containerd/containerd.sock';
  readonly logs: string[] = [];
  private proc: ChildProcess | undefined;
  private cri: CriClient | undefined;

  constructor(
    readonly node: NodeHost,
    private readonly opts: ContainerdOptions = {},
  ) {}

  /** The config, as the node sees it (paths are node paths). */
  config(): string {
    const cni = this.opts.cniConfDir ?? '/etc/cni/net.d';
    return [
      'version = 2',
      'root = "/var/lib/containerd"',
      'state = "/run/containerd"',
      // Plugins that need kernel features or devices this machine lacks only print warnings when skipped.
      'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = "${this.socket}"`,
      '[ttrpc]',
      `  address = "${this.socket}.ttrpc"`,
      '[debug]',
      `  level = "${this.opts.debug ? 'debug' : 'info'}"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      '  path = "/var/lib/containerd/opt"',
      '[plugins."io.containerd.grpc.v1.cri"]',
      `  sandbox_image = "${SANDBOX_IMAGE}"`,
      '  restrict_oom_score_adj = true',
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  enable_selinux = false',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      '    bin_dir = "/opt/cni/bin"',
      `    conf_dir = "${cni}"`,
      '    max_conf_num = 1',
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    const conf = this.node.path('/run/containerd-config.toml');
    writeFileSync(conf, this.config());
    const log = join(this.node.dir, 'containerd.log');
    this.proc = this.node.spawn('sh', [
      '-c',
      `exec containerd --config /run/containerd-config.toml 2>>${log}`,
    ]);
    const sock = this.node.path(this.socket);
    for (let i = 0; i < 300 && !existsSync(sock); i++) {
      if (this.proc.exitCode !== null)
        throw new Error(`containerd exited (${this.proc.exitCode}); see ${log}`);
      await sleep(100);
    }
    if (!existsSync(sock)) throw new Error(`containerd did not open ${sock}; see ${log}`);
    this.cri = new CriClient(sock);
    // The CRI plugin answers Version once it is initialised.
    for (let i = 0; ; i++) {
      try {
        await this.cri.call('Version', { version: 'v1' }, 2_000);
        break;
      } catch (err) {
        if (i >= 100) throw err;
        await sleep(100);
      }
    }
  }

  get client(): CriClient {
    if (!this.cri) throw new Error('containerd is not started');
    return this.cri;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** `ctr` against this containerd, in the node. */
  ctr(args: string[]) {
    return this.node.exec('ctr', ['--address', this.socket, '--namespace', CRI_NAMESPACE, ...args]);
  }

  /** Imports an image tarball (an OCI layout) into the CRI's namespace, unpacked for its snapshotter. */
  async importImage(tarball: string): Promise<void> {
    await this.ctr(['images', 'import', '--snapshotter', 'overlayfs', tarball]);
  }

  async stop(): Promise<void> {
    this.cri?.close();
    this.cri = undefined;
    const p = this.proc;
    if (p?.pid && p.exitCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000)]);
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  }
}
