/**
 * The aws-node DaemonSet pod on one node, run the way the kubelet runs it but with runc directly
 * (no API server here): the pod spec is the RENDERED chart's (infra/helm via chart.ts, values merged
 * over values.yaml), the kubelet's preparations are done as it does them (hostPath DirectoryOrCreate /
 * FileOrCreate, emptyDir medium Memory as a tmpfs of its sizeLimit, the pod's hosts/resolv.conf/
 * hostname/termination-log files, a /dev/shm tmpfs), the init containers run to completion first,
 * then the aws-node container, each under the OCI spec oci.ts computes from the chart. Readiness is
 * the chart's own exec probe, run inside the container. Nothing about the container is written
 * here: a chart that grants less than ipamd needs makes ipamd fail in the tests.
 */
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { renderChart } from '../../../infra/helm/chart.js';
import { type NodeHost, sleep } from './host.js';
import {
  type ContainerLike,
  containerSpec,
  hostPathsToCreate,
  type NodeContext,
  type PodSpecLike,
  quantity,
} from './oci.js';
import type { ImageRecipe } from './rootfs.js';
import { type IpamdProcess, NodeRootProcess, RuncContainer } from './runc.js';

/** The image config's environment (the node base image sets PATH; the Dockerfile adds none). */
const IMAGE_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

export interface AwsNodeOptions {
  node: NodeHost;
  rootfs: string;
  recipe: ImageRecipe;
  /** Helm values merged over the chart's values.yaml (as `--set` does). */
  values?: Record<string, unknown>;
  /** The Kubernetes node name (spec.nodeName). */
  nodeName: string;
  /** The node's address (the instance's primary IP): status.hostIP. */
  nodeIp: string;
  /**
   * What the cluster adds to the pod outside the chart: on EKS the pod identity webhook's
   * AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE; here the local VPC's static credentials.
   */
  extraEnv?: Record<string, string>;
  /**
   * 'runc' (default): the aws-node container as the chart specifies it. 'node-root': ipamd as full
   * root in the node's mount namespace, to tell a harness problem from a product one; never in tests.
   */
  ipamd?: 'runc' | 'node-root';
}

interface DaemonSetLike {
  kind: string;
  metadata: { name: string };
  spec: { template: { spec: ChartPodSpec } };
}

/** The rendered pod spec, its containers with their probes. */
export type ChartPodSpec = Omit<PodSpecLike, 'containers'> & { containers: (ContainerLike & ProbeHaving)[] };

interface ProbeHaving {
  readinessProbe?: { exec?: { command: string[] } };
  livenessProbe?: { exec?: { command: string[] } };
}

/** The aws-node DaemonSet's pod spec from the chart rendered with `values`. */
export function awsNodePodSpec(values: Record<string, unknown> = {}): ChartPodSpec {
  const ds = renderChart({ values }).find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'aws-node') as
    | DaemonSetLike
    | undefined;
  if (!ds) throw new Error('the chart renders no aws-node DaemonSet');
  return ds.spec.template.spec;
}

export class AwsNodePod {
  readonly podSpec: ChartPodSpec;
  readonly uid = randomUUID();
  readonly podName = `aws-node-${Math.random().toString(36).slice(2, 7)}`;
  readonly dir: string;
  /** The aws-node container (ipamd). */
  readonly ipamd: IpamdProcess;
  private prepared = false;

  constructor(private readonly opts: AwsNodeOptions) {
    this.podSpec = awsNodePodSpec(opts.values);
    this.dir = join(opts.node.dir, 'pods', this.podName);
    const main = this.podSpec.containers.find((c) => c.name === 'aws-node');
    if (!main) throw new Error('the aws-node DaemonSet has no aws-node container');
    this.ipamd =
      opts.ipamd === 'node-root'
        ? new NodeRootProcess(opts.node, this.container(main).spec)
        : this.container(main);
  }

  private context(c: ContainerLike): NodeContext {
    const files = join(this.dir, 'files');
    const emptyDirs: Record<string, string> = {};
    for (const v of this.podSpec.volumes ?? [])
      if (v.emptyDir) emptyDirs[v.name] = join(this.dir, 'volumes', v.name);
    return {
      rootfs: this.opts.rootfs,
      image: {
        user: this.opts.recipe.user,
        entrypoint: this.opts.recipe.entrypoint,
        cmd: this.opts.recipe.cmd,
        env: IMAGE_ENV,
      },
      nodeNetns: `/var/run/netns/${this.opts.node.netns}`,
      nodeName: this.opts.nodeName,
      hostname: hostname(),
      podName: this.podName,
      podNamespace: 'kube-system',
      podUid: this.uid,
      hostIp: this.opts.nodeIp,
      cgroupsPath: `${this.opts.node.cgroupRoot}/burstable/pod${this.uid}/${c.name}`,
      files: {
        hosts: join(files, 'etc-hosts'),
        resolvConf: join(files, 'resolv.conf'),
        hostnameFile: join(files, 'hostname'),
        terminationLog: join(files, `${c.name}-termination-log`),
        shm: join(this.dir, 'shm'),
      },
      emptyDirs,
      ...(this.opts.extraEnv ? { extraEnv: this.opts.extraEnv } : {}),
    };
  }

  private container(c: ContainerLike): RuncContainer {
    return new RuncContainer(
      this.opts.node,
      `${this.podName}-${c.name}`,
      join(this.dir, 'bundles', c.name),
      containerSpec(this.podSpec, c, this.context(c)),
    );
  }

  /** What the kubelet does before the first container: volumes, the pod's files, /dev/shm. */
  private async prepare(): Promise<void> {
    if (this.prepared) return;
    const node = this.opts.node;
    const files = join(this.dir, 'files');
    mkdirSync(files, { recursive: true });
    copyFileSync('/etc/hosts', join(files, 'etc-hosts'));
    // dnsPolicy Default: the node's resolver configuration.
    if (existsSync('/etc/resolv.conf')) copyFileSync('/etc/resolv.conf', join(files, 'resolv.conf'));
    else writeFileSync(join(files, 'resolv.conf'), '');
    writeFileSync(join(files, 'hostname'), `${hostname()}\n`);
    for (const c of [...(this.podSpec.initContainers ?? []), ...this.podSpec.containers])
      writeFileSync(join(files, `${c.name}-termination-log`), '');
    mkdirSync(join(this.dir, 'shm'), { recursive: true });
    await node.exec('mount', [
      '-t',
      'tmpfs',
      '-o',
      'nosuid,nodev,noexec,mode=1777,size=65536k',
      'shm',
      join(this.dir, 'shm'),
    ]);
    for (const v of this.podSpec.volumes ?? []) {
      if (v.emptyDir) {
        const dir = join(this.dir, 'volumes', v.name);
        mkdirSync(dir, { recursive: true });
        if (v.emptyDir.medium === 'Memory') {
          const size = v.emptyDir.sizeLimit ? `,size=${quantity(v.emptyDir.sizeLimit)}` : '';
          await node.exec('mount', ['-t', 'tmpfs', '-o', `mode=0777${size}`, 'tmpfs', dir]);
        }
      }
    }
    // hostPath types, as the kubelet checks or creates them (in the node's filesystem).
    const seen = new Set<string>();
    for (const c of [...(this.podSpec.initContainers ?? []), ...this.podSpec.containers]) {
      for (const h of hostPathsToCreate(this.podSpec, c)) {
        if (seen.has(h.path)) continue;
        seen.add(h.path);
        const script =
          h.type === 'DirectoryOrCreate'
            ? 'mkdir -p -m 0755 "$1"'
            : h.type === 'FileOrCreate'
              ? '[ -e "$1" ] || { umask 022; : > "$1"; }'
              : h.type === 'Directory'
                ? '[ -d "$1" ]'
                : h.type === 'File'
                  ? '[ -f "$1" ]'
                  : 'true';
        await node.exec('sh', ['-c', script, 'sh', h.path]);
      }
    }
    this.prepared = true;
  }

  /** Runs every init container to completion (exit 0), in order. */
  async runInitContainers(): Promise<void> {
    for (const c of this.podSpec.initContainers ?? []) {
      const init = this.container(c);
      init.start();
      const code = await init.wait();
      if (code !== 0) throw new Error(`init container ${c.name} exited ${code}:\n${init.logs.join('\n')}`);
    }
  }

  /** Starts the pod: kubelet preparations, init containers, then the aws-node container. */
  async start(): Promise<void> {
    await this.prepare();
    await this.runInitContainers();
    this.ipamd.start();
  }

  /** The kubelet restarting the aws-node container after it exited (init containers do not run again). */
  async restart(): Promise<void> {
    if (this.ipamd.running) await this.ipamd.wait();
    this.ipamd.start();
  }

  /** Runs the chart's readiness (or liveness) exec probe inside the container; true on exit 0. */
  async probe(kind: 'readiness' | 'liveness' = 'readiness'): Promise<boolean> {
    const main = this.podSpec.containers.find((c) => c.name === 'aws-node')!;
    const command = (kind === 'readiness' ? main.readinessProbe : main.livenessProbe)?.exec?.command;
    if (!command) throw new Error(`the chart's aws-node container has no ${kind} exec probe`);
    if (!this.ipamd.running) return false;
    return (await this.ipamd.exec(command)).code === 0;
  }

  /** Waits until the readiness probe passes (the kubelet marks the pod Ready). */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.ipamd.running)
        throw new Error(
          `aws-node exited (${await this.ipamd.wait()}):\n${this.ipamd.logs.slice(-30).join('\n')}`,
        );
      if (await this.probe('readiness').catch(() => false)) return;
      await sleep(250);
    }
    throw new Error(`aws-node not ready after ${timeoutMs} ms:\n${this.ipamd.logs.slice(-30).join('\n')}`);
  }

  async stop(): Promise<void> {
    await this.ipamd.stop();
  }
}
