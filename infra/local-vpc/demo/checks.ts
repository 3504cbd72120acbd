/**
 * Connectivity, with real packets from inside each pod: one pod on the same node, one on another
 * node, and the "internet" host. The internet host accepts only instances' primary addresses, so
 * reaching it proves SNAT; it answers with the source address it saw, which must be the node's.
 */
import { runCommand } from '../fabric/shell.js';
import type { Pod } from './pods.js';

export type CheckKind = 'same-node' | 'cross-node' | 'internet';

export interface Check {
  pod: Pod;
  kind: CheckKind;
  /** Address dialled. */
  target: string;
  /** What is at the target, for the report (a pod name or "internet"). */
  targetLabel: string;
  ok: boolean;
  /** Why it failed, or what the internet host saw. */
  detail: string;
}

export interface PlannedCheck {
  pod: Pod;
  kind: CheckKind;
  target: string;
  targetLabel: string;
}

/**
 * For every pod: a peer on its own node (on another ENI when there is one) and a peer on the next
 * node (the pod of the same rank there), so checks cover primary and secondary ENIs both ways.
 */
export function planChecks(
  pods: readonly Pod[],
  deviceOf: (pod: Pod) => number | undefined,
  internet: string,
): PlannedCheck[] {
  const byNode = new Map<string, Pod[]>();
  for (const p of pods) byNode.set(p.node.label, [...(byNode.get(p.node.label) ?? []), p]);
  const nodeLabels = [...byNode.keys()];
  const plan: PlannedCheck[] = [];
  for (const pod of pods) {
    const mine = byNode.get(pod.node.label)!;
    const rank = mine.indexOf(pod);
    const others = mine.filter((p) => p !== pod);
    const same =
      others.find((p) => deviceOf(p) !== deviceOf(pod)) ?? others[rank % Math.max(others.length, 1)];
    if (same) plan.push({ pod, kind: 'same-node', target: same.address, targetLabel: same.podName });
    if (nodeLabels.length > 1) {
      const nextLabel = nodeLabels[(nodeLabels.indexOf(pod.node.label) + 1) % nodeLabels.length]!;
      const there = byNode.get(nextLabel)!;
      const peer = there[rank % there.length]!;
      plan.push({ pod, kind: 'cross-node', target: peer.address, targetLabel: peer.podName });
    }
    plan.push({ pod, kind: 'internet', target: internet, targetLabel: 'internet' });
  }
  return plan;
}

async function ping(netns: string, address: string): Promise<boolean> {
  // One retry: the first packet of a flow may race the VPC router learning a fresh ENI.
  for (let attempt = 0; attempt < 2; attempt++) {
    const r = await runCommand('ip', ['netns', 'exec', netns, 'ping', '-n', '-q', '-c1', '-W2', address]);
    if (r.code === 0) return true;
  }
  return false;
}

/** GET / from the internet host over bash's /dev/tcp (no curl needed); the source it saw, or undefined. */
async function sourceSeenByInternet(netns: string, host: string, port: number): Promise<string | undefined> {
  const script = `exec 3<>/dev/tcp/${host}/${port}; printf 'GET / HTTP/1.0\\r\\nHost: ${host}\\r\\n\\r\\n' >&3; cat <&3`;
  const r = await runCommand('ip', ['netns', 'exec', netns, 'timeout', '5', 'bash', '-c', script]);
  const body = r.stdout.slice(r.stdout.indexOf('{'));
  try {
    const seen = (JSON.parse(body) as { sourceAddress?: unknown }).sourceAddress;
    return typeof seen === 'string' ? seen : undefined;
  } catch {
    return undefined;
  }
}

export async function runCheck(c: PlannedCheck, internetPort: number): Promise<Check> {
  if (c.kind !== 'internet') {
    const ok = await ping(c.pod.netns, c.target);
    return { ...c, ok, detail: ok ? 'reply' : 'no reply' };
  }
  const seen = await sourceSeenByInternet(c.pod.netns, c.target, internetPort);
  const want = c.pod.node.instance.primaryIp;
  if (seen === undefined) return { ...c, ok: false, detail: 'no answer from the internet host' };
  return seen === want
    ? { ...c, ok: true, detail: `seen as ${seen}` }
    : { ...c, ok: false, detail: `seen as ${seen}, expected the node's ${want} (SNAT)` };
}
