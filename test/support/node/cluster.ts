/**
 * The fixture the node tests share: one local VPC, N kubelet nodes on it (instances in alternating
 * subnets), the image's rootfs and the sandbox image built once for all of them, and helpers that
 * look at a pod's network from inside its namespace. `destroy()` undoes all of it by PID and name.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createVpc, type Instance, type LocalVpc } from '../../../infra/local-vpc/index.js';
import { KubeletNode, type KubeletNodeOptions } from './kubelet-node.js';
import { assembleImageRootfs, type ImageRecipe } from './rootfs.js';
import { buildSandboxImage } from './sandbox-image.js';

export interface ClusterOptions {
  nodes?: number;
  instanceType?: string;
  /** Chart values for every node's aws-node pod (merged over the test defaults below). */
  values?: Record<string, unknown>;
  extraPlugins?: string[];
  ipamd?: KubeletNodeOptions['ipamd'];
  /** ipamd as the DaemonSet runs it (default) or as the AMI's systemd service. */
  form?: KubeletNodeOptions['form'];
  /** For the systemd form: settings appended to /etc/vpc-cni/ipamd.env (test defaults included). */
  serviceSettings?: Record<string, string>;
}

/** Chart env every node test sets: the instance's EC2 endpoint, and a pool check fast enough for tests. */
function testEnv(instance: Instance): Record<string, string> {
  return { AWS_EC2_ENDPOINT: instance.ec2Endpoint, IPAMD_POOL_CHECK_INTERVAL_SECONDS: '0.5' };
}

function mergeEnv(values: Record<string, unknown> | undefined, env: Record<string, string>) {
  const own = (values?.env ?? {}) as Record<string, string>;
  return { ...values, env: { ...env, ...own } };
}

/**
 * VPCCNI_NODE_IPAMD=node-root runs ipamd as full root in the node's mount namespace instead of in its
 * container: a way to tell a harness problem from a product one by hand. CI never sets it.
 */
function debugIpamdMode(): KubeletNodeOptions['ipamd'] {
  const mode = process.env.VPCCNI_NODE_IPAMD;
  if (mode === undefined || mode === '' || mode === 'runc') return 'runc';
  if (mode === 'node-root') return 'node-root';
  throw new Error(`VPCCNI_NODE_IPAMD=${mode}: use runc (default) or node-root`);
}

export class Cluster {
  private constructor(
    readonly dir: string,
    readonly vpc: LocalVpc,
    readonly nodes: KubeletNode[],
    readonly rootfs: string,
    readonly recipe: ImageRecipe,
  ) {}

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const id = process.pid.toString(36) + Math.random().toString(36).slice(2, 6);
    const dir = `/tmp/vpccni-${id}`;
    mkdirSync(join(dir, 'image'), { recursive: true });
    const rootfs = join(dir, 'rootfs');
    const recipe = assembleImageRootfs(rootfs);
    const image = buildSandboxImage(join(dir, 'image'));
    const vpc = await createVpc({ prefix: `vpccni-${id}` });
    const cluster = new Cluster(dir, vpc, [], rootfs, recipe);
    try {
      const instances: Instance[] = [];
      for (let i = 0; i < (opts.nodes ?? 1); i++)
        instances.push(
          await vpc.launchInstance({ instanceType: opts.instanceType ?? 'm5.large', subnet: i % 2 }),
        );
      const started = await Promise.allSettled(
        instances.map((instance, i) =>
          KubeletNode.start({
            instance,
            dir: join(dir, `n${i + 1}`),
            rootfs,
            recipe,
            values: mergeEnv(opts.values, testEnv(instance)),
            ...(opts.extraPlugins ? { extraPlugins: opts.extraPlugins } : {}),
            ipamd: opts.ipamd ?? debugIpamdMode(),
            form: opts.form ?? 'daemonset',
            serviceSettings: { ...testEnv(instance), ...opts.serviceSettings },
          }),
        ),
      );
      for (const s of started) if (s.status === 'fulfilled') cluster.nodes.push(s.value);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      for (const n of cluster.nodes) await n.containerd.importImage(image);
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  async destroy(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.destroy()));
    await this.vpc.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in a pod's network namespace (entered through its sandbox process), without
 * blocking the event loop: the local VPC's internet echo server is served by this very process.
 */
export function inPod(pid: number, cmd: string, args: string[], timeoutMs = 10_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, '--', cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** One ICMP echo from inside a pod; true when answered. */
export async function podPing(pid: number, address: string): Promise<boolean> {
  return (await inPod(pid, 'ping', ['-c1', '-W2', address])).code === 0;
}

/** An HTTP GET from inside a pod (curl); the body, or undefined when it failed. */
export async function podGet(pid: number, url: string): Promise<string | undefined> {
  const r = await inPod(pid, 'curl', ['-s', '-m', '5', url]);
  return r.code === 0 ? r.stdout : undefined;
}

/** Polls until fn returns a truthy value. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}
