/** The node's pool limits from its instance type and the configuration. */
import type { PoolLimits } from './planner.js';

export interface TypeLimits {
  name: string;
  enis: number;
  ipv4PerEni: number;
  hypervisor: 'nitro' | 'xen' | 'unknown';
  bareMetal: boolean;
  vcpus: number | null;
}

/**
 * The calculator's default max pods: in IP mode every secondary IP of every ENI plus the two
 * host-network pods (aws-node, kube-proxy); in prefix mode the kubelet-recommended 110, or 250 on
 * types with 30 or more vCPUs, never more than the addresses the ENIs can hold.
 */
export function defaultMaxPods(t: TypeLimits, mode: 'ip' | 'prefix'): number {
  const ipMode = t.enis * (t.ipv4PerEni - 1) + 2;
  if (mode === 'ip') return ipMode;
  const recommended = (t.vcpus ?? 0) >= 30 ? 250 : 110;
  return Math.min(recommended, t.enis * (t.ipv4PerEni - 1) * 16 + 2);
}

export function poolLimits(
  t: TypeLimits,
  cfg: { mode: 'ip' | 'prefix'; maxEni: number | null; maxPods: number | null },
): PoolLimits {
  return {
    maxEnis: Math.min(t.enis, cfg.maxEni ?? Number.POSITIVE_INFINITY),
    slotsPerEni: t.ipv4PerEni - 1,
    maxPods: cfg.maxPods ?? defaultMaxPods(t, cfg.mode),
  };
}

/** Prefix delegation needs the Nitro system (bare-metal types of Nitro families too). */
export function prefixModeProblem(t: TypeLimits): string | null {
  if (t.hypervisor === 'nitro' || t.bareMetal) return null;
  return `ENABLE_PREFIX_DELEGATION=true needs a Nitro instance type; ${t.name} runs on ${t.hypervisor}. Turn prefix delegation off or use a Nitro type (m5, c5, t3, ...)`;
}
