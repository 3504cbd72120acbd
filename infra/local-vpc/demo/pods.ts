/**
 * Pods as a runtime makes them: a network namespace (`<prefix>-pod-NN`), then CNI ADD through the
 * node's chain; on stop CNI DEL, then the namespace goes. A failed ADD is cleaned up with DEL and,
 * when the plugin said "try again later" (code 11, the pool is still growing), retried with
 * backoff as kubelet would.
 */
import { randomBytes } from 'node:crypto';
import { mustRun, runCommand } from '../fabric/shell.js';
import type { Node } from './cluster.js';
import { CniCallError, type PodRef } from './runtime.js';

export interface Pod extends PodRef {
  node: Node;
  netns: string;
  /** The address the plugin returned (without /32); empty until ADD succeeded. */
  address: string;
  result?: Record<string, unknown>;
  /** ADD attempts it took (more than 1 when the pool was momentarily empty). */
  attempts: number;
  /** How long the successful ADD through the whole chain took, in ms. */
  addMs?: number;
}

export function podNetnsName(prefix: string, index: number): string {
  return `${prefix}-pod-${String(index).padStart(2, '0')}`;
}

export function newPod(prefix: string, index: number, node: Node): Pod {
  const podName = `demo-${String(index).padStart(2, '0')}`;
  const netns = podNetnsName(prefix, index);
  return {
    node,
    netns,
    netnsPath: `/var/run/netns/${netns}`,
    containerId: randomBytes(32).toString('hex'),
    ifName: 'eth0',
    podNamespace: 'default',
    podName,
    address: '',
    attempts: 0,
  };
}

/** The first IPv4 address of a CNI result, without its prefix length. */
export function addressOf(result: Record<string, unknown>): string {
  const ips = result.ips;
  const first = Array.isArray(ips) ? (ips[0] as { address?: unknown } | undefined) : undefined;
  if (typeof first?.address !== 'string' || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(first.address)) {
    throw new Error(`the CNI result has no IPv4 address: ${JSON.stringify(result).slice(0, 300)}`);
  }
  return first.address.split('/')[0]!;
}

const MAX_ATTEMPTS = 8;

/** Creates the pod's namespace and runs ADD, retrying "try again later" with backoff. */
export async function startPod(pod: Pod): Promise<void> {
  const runtime = pod.node.runtime;
  if (!runtime) throw new Error(`${pod.node.label} has no CNI runtime (ipamd not ready)`);
  await mustRun('ip', ['netns', 'add', pod.netns]);
  await mustRun('ip', ['-n', pod.netns, 'link', 'set', 'lo', 'up']);
  for (;;) {
    pod.attempts++;
    const started = performance.now();
    try {
      pod.result = await runtime.add(pod);
      pod.addMs = performance.now() - started;
      pod.address = addressOf(pod.result);
      return;
    } catch (err) {
      // The runtime's habit after any failed ADD: DEL, so nothing half-made stays behind.
      await runtime.del(pod, undefined).catch(() => {});
      if (!(err instanceof CniCallError && err.retryable) || pod.attempts >= MAX_ATTEMPTS) {
        throw new Error(`pod ${pod.podName} on ${pod.node.label}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** (pod.attempts - 1), 3_000)));
    }
  }
}

/** DEL through the chain (best effort), then the namespace. Returns the DEL error, if any. */
export async function stopPod(pod: Pod): Promise<string | undefined> {
  let problem: string | undefined;
  if (pod.node.runtime && pod.attempts > 0) {
    try {
      await pod.node.runtime.del(pod, pod.result);
    } catch (err) {
      problem = `DEL ${pod.podName}: ${(err as Error).message}`;
    }
  }
  const r = await runCommand('ip', ['netns', 'delete', pod.netns]);
  if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) {
    problem = `${problem ? `${problem}; ` : ''}ip netns delete ${pod.netns}: ${r.stderr.trim()}`;
  }
  return problem;
}

/** "median 120 ms, p90 300 ms, max 410 ms" over a list of durations. */
export function latencySummary(ms: readonly number[]): string {
  if (ms.length === 0) return 'no samples';
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return `median ${Math.round(at(0.5))} ms, p90 ${Math.round(at(0.9))} ms, max ${Math.round(sorted.at(-1)!)} ms`;
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
