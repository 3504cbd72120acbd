/**
 * A whole kubelet node on one local-VPC instance, assembled from the pieces of this directory:
 * the node's mount namespace (host.ts), its /opt/cni/bin as the AMI ships it (Debian's loopback and
 * portmap) plus what the aws-node init container installs, ipamd as the aws-node DaemonSet runs it
 * (aws-node.ts: runc, the rendered chart's spec) or as the systemd unit runs it (systemd.ts),
 * containerd with its CRI plugin, and a kubelet driving pods through CRI (kubelet.ts). `destroy()`
 * removes pods through CRI, then kills every process of the node by PID and removes every mount
 * and cgroup with the node's mount namespace, also after a failure.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Instance } from '../../../infra/local-vpc/index.js';
import { DEFAULT_SOCKET_PATH } from '../../../lib/protocol/ipamd.js';
import { AwsNodePod } from './aws-node.js';
import { Containerd } from './containerd.js';
import { NodeHost, sleep } from './host.js';
import { IpamdService } from './ipamd-service.js';
import { Kubelet } from './kubelet.js';
import type { ImageRecipe } from './rootfs.js';
import type { IpamdProcess } from './runc.js';

/** Debian's plugins the node image ships in /opt/cni/bin (the kubelet's loopback, portmap for hostPort). */
export const NODE_CNI_PLUGINS = ['loopback', 'portmap'];

export interface KubeletNodeOptions {
  instance: Instance;
  /** Test directory for this node (created; removed by destroy). */
  dir: string;
  rootfs: string;
  recipe: ImageRecipe;
  /** Chart values merged over values.yaml (the aws-node DaemonSet's env, ...). */
  values?: Record<string, unknown>;
  /** Extra plugins (Debian's, by name) in the node's /opt/cni/bin, e.g. for a baseline conflist. */
  extraPlugins?: string[];
  containerdDebug?: boolean;
  /** How ipamd runs: the chart's container (default) or, to debug the harness, as node root. */
  ipamd?: 'runc' | 'node-root';
  /**
   * 'daemonset' (default): the aws-node pod of the rendered chart. 'systemd': the AMI's service
   * (install.sh, the installed unit, ipamd.env with `serviceSettings` appended).
   */
  form?: 'daemonset' | 'systemd';
  serviceSettings?: Record<string, string>;
}

/** What the node tests drive of ipamd, whichever form runs it. */
export interface IpamdForm {
  readonly ipamd: IpamdProcess;
  start(): Promise<void>;
  waitReady(timeoutMs?: number): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export class KubeletNode {
  readonly host: NodeHost;
  readonly containerd: Containerd;
  readonly kubelet: Kubelet;
  /** ipamd as this node runs it (the aws-node pod, or the systemd service). */
  readonly form: IpamdForm;
  readonly nodeName: string;

  private constructor(
    readonly instance: Instance,
    host: NodeHost,
    opts: KubeletNodeOptions,
  ) {
    this.host = host;
    this.nodeName = `ip-${instance.primaryIp.replace(/\./g, '-')}.us-west-2.compute.internal`;
    this.containerd = new Containerd(host, { debug: opts.containerdDebug ?? false });
    this.kubelet = undefined as unknown as Kubelet;
    const credentials = {
      AWS_ACCESS_KEY_ID: instance.awsEnv.AWS_ACCESS_KEY_ID!,
      AWS_SECRET_ACCESS_KEY: instance.awsEnv.AWS_SECRET_ACCESS_KEY!,
    };
    this.form =
      opts.form === 'systemd'
        ? new IpamdService(host, { ...credentials, ...opts.serviceSettings })
        : new AwsNodePod({
            node: host,
            rootfs: opts.rootfs,
            recipe: opts.recipe,
            nodeName: this.nodeName,
            nodeIp: instance.primaryIp,
            values: opts.values ?? {},
            ipamd: opts.ipamd ?? 'runc',
            // On EKS the pod identity webhook injects credentials; the local VPC takes static keys
            // that name the instance in the EC2 call log.
            extraEnv: credentials,
          });
  }

  /** The aws-node pod (DaemonSet form only). */
  get awsNode(): AwsNodePod {
    if (!(this.form instanceof AwsNodePod)) throw new Error('this node runs ipamd as a systemd service');
    return this.form;
  }

  /**
   * Boots the node the way a kubelet node comes up: node image files, containerd, then the aws-node
   * pod (init containers, ipamd), and waits until ipamd is ready and containerd's CRI reports the
   * network ready (it loaded the conflist ipamd wrote).
   */
  static async start(opts: KubeletNodeOptions): Promise<KubeletNode> {
    const host = await NodeHost.create({ dir: opts.dir, netns: opts.instance.netns });
    const node = new KubeletNode(opts.instance, host, opts);
    try {
      for (const p of [...NODE_CNI_PLUGINS, ...(opts.extraPlugins ?? [])])
        await host.exec('cp', [`/usr/lib/cni/${p}`, `/opt/cni/bin/${p}`]);
      await node.containerd.start();
      (node as { kubelet: Kubelet }).kubelet = new Kubelet(node.containerd.client, host.cgroupRoot);
      await node.form.start();
      await node.form.waitReady();
      await node.waitNetworkReady();
    } catch (err) {
      await node.destroy().catch(() => undefined);
      throw err;
    }
    return node;
  }

  /** Waits for the CRI's NetworkReady condition (the kubelet's "network plugin ready"). */
  async waitNetworkReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const st = await this.containerd.client.call<{
        status: { conditions: { type: string; status: boolean; message: string }[] };
      }>('Status', {});
      const net = st.status.conditions.find((c) => c.type === 'NetworkReady');
      if (net?.status) return;
      last = net?.message ?? '';
      await sleep(200);
    }
    throw new Error(`containerd's CRI network is not ready: ${last}`);
  }

  /** The conflist ipamd wrote into the node's /etc/cni/net.d. */
  conflist(): Record<string, unknown> | undefined {
    const p = this.host.path('/etc/cni/net.d/10-aws.conflist');
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>) : undefined;
  }

  /** ipamd's checkpoint in the node's /var/run/aws-node. */
  checkpoint(): { allocations: { containerId: string; address: string; netns?: string }[] } {
    return JSON.parse(readFileSync(this.host.path('/var/run/aws-node/ipam.json'), 'utf8'));
  }

  /** The ipamd socket as the test reaches it. */
  get ipamdSocket(): string {
    return this.host.path(DEFAULT_SOCKET_PATH);
  }

  async destroy(): Promise<void> {
    try {
      if (this.kubelet) await this.kubelet.removeAll();
    } catch {
      // best effort: everything is killed below
    }
    await this.form.stop().catch(() => undefined);
    await this.containerd.stop().catch(() => undefined);
    await this.host.destroy();
  }

  /** A path under this node's test directory (not a node path). */
  file(name: string): string {
    return join(this.host.dir, name);
  }
}
