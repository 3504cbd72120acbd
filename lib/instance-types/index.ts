/** The one lookup API for instance-type limits, shared by ipamd, the calculator and the local VPC. */
import { INSTANCE_TYPE_JSON } from './data.generated.js';
import type { InstanceTypeLimits } from './types.js';

export type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

let all: InstanceTypeLimits[] | undefined;
let byName: Map<string, InstanceTypeLimits> | undefined;

function table(): Map<string, InstanceTypeLimits> {
  if (!byName) {
    // Not frozen: access to frozen objects is several times slower in V8, and --all reads every one.
    all = JSON.parse(INSTANCE_TYPE_JSON) as InstanceTypeLimits[];
    byName = new Map(all.map((t) => [t.name, t]));
  }
  return byName;
}

const TYPE_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;

/**
 * Limits for a type from the generated table, or undefined when the table does not know it. The object is
 * shared with every other caller: read it, never write to it.
 */
export function lookupInstanceType(name: string): InstanceTypeLimits | undefined {
  if (byName) return byName.get(name);
  // Before the whole table is needed, parse only the type's own line: a node boot looks up one type.
  if (!TYPE_NAME.test(name)) return undefined;
  const start = INSTANCE_TYPE_JSON.indexOf(`\n{"name":"${name}",`);
  if (start === -1) return undefined;
  const end = INSTANCE_TYPE_JSON.indexOf('\n', start + 1);
  const line = INSTANCE_TYPE_JSON.slice(start + 1, end);
  return JSON.parse(line.endsWith(',') ? line.slice(0, -1) : line) as InstanceTypeLimits;
}

/** Every known type, sorted by name. */
export function allInstanceTypes(): InstanceTypeLimits[] {
  table();
  return [...all!];
}

/** The family part of a type name: `m5` for `m5.large`, `u-6tb1` for `u-6tb1.metal`. */
export function instanceFamily(name: string): string {
  const dot = name.indexOf('.');
  return dot === -1 ? name : name.slice(0, dot);
}

/** Known types of one family (`m5` matches m5.* but not m5a.* or m5d.*), sorted by name. */
export function instanceTypesInFamily(family: string): InstanceTypeLimits[] {
  return allInstanceTypes().filter((t) => instanceFamily(t.name) === family);
}

/**
 * ipamd's rule (as the AWS VPC CNI's): prefix delegation works on Nitro, and bare-metal types run on
 * the Nitro system although EC2 reports no hypervisor for them.
 */
export function supportsPrefixDelegation(t: InstanceTypeLimits): boolean {
  return t.hypervisor === 'nitro' || t.bareMetal;
}

/**
 * The EKS AMI max-pods calculator's rule: only EC2's `Hypervisor: nitro` counts, so bare-metal types
 * are not Nitro there. The calculator uses this one to give the AMI's numbers.
 */
export function reportsNitroHypervisor(t: InstanceTypeLimits): boolean {
  return t.hypervisor === 'nitro';
}
