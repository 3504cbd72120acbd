/**
 * CNI calls on one instance of the local VPC as its container runtime makes them: the shim (or the
 * Node plugin) exec'd in the instance's network namespace with a pod's CNI_* environment, against
 * the real ipamd running there. Pods are namespaces this helper creates and deletes.
 */
import type { Instance } from '../../../infra/local-vpc/index.js';
import type { Ipamd, Scenario } from '../ipamd/fixture.js';
import { Netns, PLUGIN, pluginReply, podCniEnv, REPO } from './harness.js';

export const SHIM = `${REPO}/dist/aws-cni`;

export interface Pod {
  /** The Kubernetes pod name (K8S_POD_NAME): the host veth's name derives from it. */
  name: string;
  containerId: string;
  ns?: Netns;
}

export type Reply = ReturnType<typeof pluginReply>;

export class NodeCalls {
  private readonly namespaces: Netns[] = [];

  constructor(
    readonly s: Scenario,
    readonly node: Instance,
    readonly ipamd: Ipamd,
  ) {}

  conf(over: Record<string, unknown> = {}) {
    return {
      cniVersion: '1.1.0',
      name: 'aws-cni',
      type: 'aws-cni',
      ipamdSocket: this.ipamd.socketPath,
      ...over,
    };
  }

  /** One call of the shim (default) or node + the bundle, in the node's namespace. */
  async call(
    command: string,
    pod: Pod,
    stdin: string,
    opts: { exe?: 'shim' | 'node'; env?: Record<string, string | undefined> } = {},
  ): Promise<Reply> {
    const [cmd, args] = opts.exe === 'node' ? [process.execPath, [PLUGIN]] : [SHIM, []];
    const env = { ...podCniEnv(command, pod), ...opts.env };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const r = await this.s.vpc.exec(this.node, cmd, args, { input: stdin, env });
    return pluginReply(r);
  }

  /** A pod: a network namespace of its own (deleted with close()). */
  newPod(name: string, containerId = `ctr-${name}`): Pod {
    const ns = Netns.create(`${this.s.vpc.prefix}-${containerId}`.slice(0, 60));
    this.namespaces.push(ns);
    return { name, containerId, ns };
  }

  /**
   * ADD as a runtime makes it: retried while the answer is "try again later" (11, the pool is still
   * growing: ENIs take a while to attach), up to `timeoutMs`. Returns the result and the address.
   */
  async add(
    pod: Pod,
    opts: { exe?: 'shim' | 'node'; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
  ) {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let r = await this.call('ADD', pod, JSON.stringify(this.conf()), opts);
    while (r.json?.code === 11 && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 250));
      r = await this.call('ADD', pod, JSON.stringify(this.conf()), opts);
    }
    if (r.code !== 0) throw new Error(`ADD ${pod.name} failed: ${r.raw}`);
    const address = (r.json!.ips as { address: string }[])[0]!.address.split('/')[0]!;
    return { result: r.json!, address };
  }

  /** The node's route to a pod address ('' when there is none). */
  async hostRoute(address: string): Promise<string> {
    return (
      await this.s.vpc.exec(this.node, 'ip', ['route', 'show', 'table', 'main', `${address}/32`])
    ).stdout.trim();
  }

  /** The node's policy rules that name a pod address. */
  async hostRules(address: string): Promise<string[]> {
    const out = (await this.s.vpc.exec(this.node, 'ip', ['rule', 'show'])).stdout;
    return out.split('\n').filter((l) => l.includes(`${address} `) || l.endsWith(address));
  }

  close(): void {
    for (const ns of this.namespaces.splice(0)) ns.delete();
  }
}
