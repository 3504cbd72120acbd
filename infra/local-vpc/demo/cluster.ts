/**
 * The demo's "cluster": a local VPC, N instances, and the real ipamd (dist/ipamd.mjs) running inside
 * each instance namespace with its own socket, checkpoint, CNI config directory and log file under
 * the run's work directory. Each node also gets a CNI bin directory where `aws-cni` is the bundled
 * plugin, so the runtime finds it on CNI_PATH like any other plugin.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPAMD_NODE_FLAGS } from '../../../ipamd/node-flags.js';
import { ipamdRequest } from '../../../ipamd/server/client.js';
import { type HealthResult, PROTOCOL_VERSION } from '../../../lib/protocol/ipamd.js';
import { createVpc, type Instance, type LocalVpc } from '../index.js';
import { CniRuntime, readConfList } from './runtime.js';

export interface Node {
  /** node-1, node-2, ... in launch order. */
  label: string;
  instance: Instance;
  /** The name kubelet would register: ip-10-0-1-5. */
  nodeName: string;
  dir: string;
  socketPath: string;
  logPath: string;
  ipamd?: ChildProcess;
  runtime?: CniRuntime;
}

export interface Bundles {
  ipamd: string;
  plugin: string;
}

/** Finds the built programs next to this bundle (dist/), or in dist/ when run from sources. */
export function locateBundles(fromUrl: string): Bundles {
  const here = dirname(fileURLToPath(fromUrl));
  const candidates = [here, join(here, '../../../dist')];
  for (const dir of candidates) {
    const ipamd = join(dir, 'ipamd.mjs');
    const plugin = join(dir, 'aws-cni.mjs');
    // The native shim hands each call to ipamd and execs aws-cni.mjs beside it when ipamd is away.
    const shim = join(dir, 'aws-cni');
    if (existsSync(ipamd) && existsSync(plugin)) return { ipamd, plugin: existsSync(shim) ? shim : plugin };
  }
  throw new Error(
    `dist/ipamd.mjs and dist/aws-cni.mjs not found (looked in ${candidates.join(', ')}): run npm run build`,
  );
}

export function nodeNameOf(primaryIp: string): string {
  return `ip-${primaryIp.replaceAll('.', '-')}`;
}

export class Cluster {
  readonly nodes: Node[] = [];

  private constructor(
    readonly vpc: LocalVpc,
    readonly workDir: string,
    private readonly bundles: Bundles,
  ) {}

  static async create(workDir: string, bundles: Bundles): Promise<Cluster> {
    mkdirSync(workDir, { recursive: true });
    return new Cluster(await createVpc(), workDir, bundles);
  }

  /** Launches the instances one subnet after the other, so nodes sit in different subnets. */
  async launch(count: number, instanceType: string): Promise<void> {
    for (let i = 0; i < count; i++) {
      const instance = await this.vpc.launchInstance({ instanceType, subnet: i % this.vpc.subnetIds.length });
      const label = `node-${i + 1}`;
      const dir = join(this.workDir, label);
      // 0755 whatever the umask: ipamd refuses a run directory others may write to.
      mkdirSync(join(dir, 'bin'), { recursive: true, mode: 0o755 });
      symlinkSync(this.bundles.plugin, join(dir, 'bin', 'aws-cni'));
      this.nodes.push({
        label,
        instance,
        nodeName: nodeNameOf(instance.primaryIp),
        dir,
        socketPath: join(dir, 'vpc-cni.sock'),
        logPath: join(dir, 'ipamd.log'),
      });
    }
  }

  /** Starts ipamd in every instance with the reference's defaults; its JSON log goes to a file. */
  startIpamd(): void {
    for (const node of this.nodes) {
      const log = openSync(node.logPath, 'a');
      node.ipamd = this.vpc.runIn(
        node.instance,
        process.execPath,
        [...IPAMD_NODE_FLAGS, this.bundles.ipamd],
        {
          env: {
            PATH: process.env.PATH,
            // A key per node tells the nodes apart in the EC2 call log.
            AWS_ACCESS_KEY_ID: `AKID${node.instance.id}`,
            AWS_SECRET_ACCESS_KEY: 'local',
            AWS_EC2_ENDPOINT: node.instance.ec2Endpoint,
            AWS_EC2_METADATA_SERVICE_ENDPOINT: node.instance.imdsEndpoint,
            IPAMD_SOCKET_PATH: node.socketPath,
            IPAMD_CHECKPOINT_PATH: join(node.dir, 'ipam.json'),
            CNI_CONF_DIR: join(node.dir, 'net.d'),
            CLUSTER_NAME: 'vpccni-demo',
            // The demo keeps every file in the node's directory: ipamd's log on stderr (into ipamd.log),
            // the plugin's beside it.
            AWS_VPC_K8S_CNI_LOG_FILE: 'stderr',
            AWS_VPC_K8S_PLUGIN_LOG_FILE: join(node.dir, 'plugin.log'),
            IPAMD_PLUGIN_LOG_DIR: node.dir,
          },
          stdio: ['ignore', log, log],
        },
      );
      closeSync(log);
    }
  }

  /** Resolves once every ipamd answers ready and has written its conflist; fails if one exits. */
  async waitReady(timeoutMs: number, onTick: () => void): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const pending = new Set(this.nodes);
    while (pending.size > 0) {
      for (const node of [...pending]) {
        const proc = node.ipamd;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
          throw new Error(
            `ipamd on ${node.label} exited (${proc?.exitCode ?? proc?.signalCode}):\n${this.logTail(node)}`,
          );
        }
        const conflist = join(node.dir, 'net.d', '10-aws.conflist');
        if (existsSync(conflist) && (await this.ready(node))) {
          node.runtime = new CniRuntime(
            readConfList(conflist),
            [join(node.dir, 'bin'), '/usr/lib/cni'],
            (cmd, args, opts) => this.vpc.exec(node.instance, cmd, args, opts),
            `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
          );
          pending.delete(node);
        }
      }
      onTick();
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const node = [...pending][0]!;
        throw new Error(
          `ipamd on ${node.label} not ready after ${timeoutMs / 1000} s:\n${this.logTail(node)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async ready(node: Node): Promise<boolean> {
    try {
      const h = await ipamdRequest<HealthResult>(
        node.socketPath,
        { v: PROTOCOL_VERSION, op: 'health' },
        2_000,
      );
      return h.ready;
    } catch {
      return false;
    }
  }

  /** The last lines of a node's ipamd log, for error messages. */
  logTail(node: Node, lines = 15): string {
    try {
      return readFileSync(node.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no ipamd log)';
    }
  }

  /** SIGTERM every ipamd by PID, SIGKILL those still running after `graceMs`. */
  async stopIpamd(graceMs = 5_000): Promise<void> {
    const running = this.nodes.flatMap((n) =>
      n.ipamd && n.ipamd.exitCode === null && n.ipamd.signalCode === null ? [n.ipamd] : [],
    );
    const exited = running.map((p) => new Promise<void>((r) => p.once('exit', () => r())));
    for (const p of running) p.kill('SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([Promise.all(exited), timer])) === 'timeout') {
      for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 2_000).unref())]);
    }
  }
}
