/**
 * Readers of one node's state for the churn invariants, each from where the fact lives: ipamd's
 * checkpoint file, its introspection API (inside the node, from a process run there), the node's
 * kernel (`ip -j`), and the pending-del directory beside the socket.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { runCommand } from '../../../infra/local-vpc/fabric/shell.js';
import type { Instance, LocalVpc } from '../../../infra/local-vpc/index.js';
import { pendingDelDir } from '../../../lib/protocol/pending-del.js';

export interface Held {
  containerId: string;
  address: string;
}

/** The checkpoint's allocations (none before ipamd first wrote it). */
export function checkpointAllocations(path: string): Held[] {
  if (!existsSync(path)) return [];
  const data = JSON.parse(readFileSync(path, 'utf8')) as { allocations: Held[] };
  return data.allocations.map((a) => ({ containerId: a.containerId, address: a.address }));
}

/** Notes of DELs the plugin ran while ipamd was away that ipamd has not processed yet. */
export function pendingDels(socketPath: string): string[] {
  const dir = pendingDelDir(socketPath);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => n.endsWith('.json'));
}

/** GET of an introspection path, made by a process inside the node (where ipamd listens). */
export async function introspect<T>(vpc: LocalVpc, node: Instance, path: string): Promise<T> {
  const script = `fetch('http://127.0.0.1:61679${path}').then(r=>r.text()).then(t=>process.stdout.write(t),e=>{console.error(String(e));process.exit(1)})`;
  const r = await vpc.exec(node, process.execPath, ['-e', script], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`introspection ${path} on ${node.id}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

/** ipamd's assignments as its introspection API lists them. */
export async function introspectedPods(vpc: LocalVpc, node: Instance): Promise<Held[]> {
  const pods = await introspect<{ address: string; assignment: { containerId: string } }[]>(
    vpc,
    node,
    '/v1/pods',
  );
  return pods.map((p) => ({ containerId: p.assignment.containerId, address: p.address }));
}

export interface KernelState {
  /** veth links other than the ENIs' (eth<N>): host ends of pod veths. */
  podVeths: { name: string; mac: string }[];
  /** /32 routes of the main table through a link that is not an ENI. */
  podRoutes: { dst: string; dev: string }[];
  /** Rules at the plugin's priorities: 512 (to pod) and 1536 (from pod, or from an ENI's primary). */
  rules: { priority: number; src?: string; dst?: string; table: string }[];
}

async function ipJson<T>(netns: string, args: string[]): Promise<T> {
  const r = await runCommand('ip', ['-j', '-n', netns, ...args]);
  if (r.code !== 0) throw new Error(`ip -n ${netns} ${args.join(' ')}: ${r.stderr.trim()}`);
  return (r.stdout.trim() ? JSON.parse(r.stdout) : []) as T;
}

const ENI_LINK = /^eth\d+$/;

export async function kernelState(node: Instance): Promise<KernelState> {
  const links = await ipJson<{ ifname: string; address?: string; linkinfo?: { info_kind?: string } }[]>(
    node.netns,
    ['-d', 'link', 'show'],
  );
  const podVeths = links
    .filter((l) => l.linkinfo?.info_kind === 'veth' && !ENI_LINK.test(l.ifname))
    .map((l) => ({ name: l.ifname, mac: l.address ?? '' }));
  const routes = await ipJson<{ dst: string; dev?: string }[]>(node.netns, [
    'route',
    'show',
    'table',
    'main',
  ]);
  const podRoutes = routes
    .filter((r) => r.dev && !ENI_LINK.test(r.dev) && r.dev !== 'lo')
    .map((r) => ({ dst: r.dst, dev: r.dev! }));
  const allRules = await ipJson<{ priority: number; src?: string; dst?: string; table: string }[]>(
    node.netns,
    ['rule', 'show'],
  );
  // `ip -j` spells "from all" as src "all".
  const rules = allRules
    .filter((r) => r.priority === 512 || r.priority === 1536)
    .map((r) => ({ ...r, ...(r.src === 'all' ? { src: undefined } : {}) }));
  return { podVeths, podRoutes, rules };
}
