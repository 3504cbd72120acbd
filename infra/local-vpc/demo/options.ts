/**
 * The demo's options, validated up front so a typo fails in a second rather than after the VPC is
 * built. The default pod count depends on the instance type: enough pods per node to fill the
 * primary ENI and spill onto a secondary one, which is the interesting part of the routing model.
 */
import { lookupInstanceType } from '../../../lib/instance-types/index.js';

export interface DemoOptions {
  instances: number;
  instanceType: string;
  /** Total pods, spread round-robin over the instances. */
  pods: number;
  /** Leave everything running (held by a background process) until `demo down`. */
  keep: boolean;
  /** Name of a kept demo, so several can be kept side by side. */
  name: string;
  /** ADDs/DELs in flight at once per node (a runtime starts pods concurrently). */
  concurrency: number;
}

export const MAX_INSTANCES = 8;
export const MAX_PODS = 250;
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

export class OptionError extends Error {
  override name = 'OptionError';
}

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new OptionError(`${flag}: expected a whole number from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

/**
 * Pods per node that fill the primary ENI's secondary addresses and put two more on a secondary
 * ENI, capped by what the type can address at all. Undefined for a type the table does not know.
 */
export function defaultPodsPerNode(instanceType: string): number | undefined {
  const t = lookupInstanceType(instanceType);
  if (!t) return undefined;
  const perEni = t.ipv4PerEni - 1;
  const addressable = perEni * t.enis;
  return Math.max(1, Math.min(perEni + (t.enis > 1 ? 2 : 0), addressable));
}

export interface RawOptions {
  instances?: string;
  instanceType?: string;
  pods?: string;
  keep?: boolean;
  name?: string;
  concurrency?: string;
}

export function parseOptions(raw: RawOptions): DemoOptions {
  const instances = wholeNumber('--instances', raw.instances ?? '2', 1, MAX_INSTANCES);
  const instanceType = raw.instanceType ?? 'm5.large';
  const perNode = defaultPodsPerNode(instanceType);
  if (perNode === undefined) {
    throw new OptionError(
      `--instance-type: "${instanceType}" is not in the instance-type table (try m5.large, c5.xlarge, t3.medium)`,
    );
  }
  const pods =
    raw.pods === undefined
      ? Math.min(perNode * instances, MAX_PODS)
      : wholeNumber('--pods', raw.pods, 1, MAX_PODS);
  const name = raw.name ?? 'default';
  if (!NAME_RE.test(name)) {
    throw new OptionError(`--name: use 1-32 lowercase letters, digits or '-', got "${name}"`);
  }
  const concurrency = wholeNumber('--concurrency', raw.concurrency ?? '4', 1, 32);
  return { instances, instanceType, pods, keep: raw.keep ?? false, name, concurrency };
}
