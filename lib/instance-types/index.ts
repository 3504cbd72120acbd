/** The one lookup API for instance-type limits, shared by ipamd, the calculator and the local VPC. */
import { INSTANCE_TYPE_TABLE } from './data.generated.js';
import type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

export type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

const HYPERVISORS: Record<string, Hypervisor> = { n: 'nitro', x: 'xen', u: 'unknown' };

/** One line of the generated table (format in data.generated.ts); the generator validated it. */
function parseLine(line: string): InstanceTypeLimits {
  const [name, enis, ipv4PerEni, cards, defaultCard, hv, bareMetal, vcpus] = line.split(' ') as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const networkCards: NetworkCard[] = cards.split(',').map((c) => {
    const colon = c.indexOf(':');
    return { index: Number(c.slice(0, colon)), maxEnis: Number(c.slice(colon + 1)) };
  });
  return {
    name,
    enis: Number(enis),
    ipv4PerEni: Number(ipv4PerEni),
    networkCards,
    defaultNetworkCardIndex: Number(defaultCard),
    hypervisor: HYPERVISORS[hv] ?? 'unknown',
    bareMetal: bareMetal === '1',
    vcpus: vcpus === '-' ? null : Number(vcpus),
  };
}

let all: InstanceTypeLimits[] | undefined;
let byName: Map<string, InstanceTypeLimits> | undefined;

function table(): Map<string, InstanceTypeLimits> {
  if (!byName) {
    all = INSTANCE_TYPE_TABLE.trim().split('\n').map(parseLine);
    byName = new Map(all.map((t) => [t.name, t]));
  }
  return byName;
}

/** Limits for a type from the generated table, or undefined when the table does not know it. */
export function lookupInstanceType(name: string): InstanceTypeLimits | undefined {
  if (byName) return byName.get(name);
  // Before the whole table is needed, find the one line: a node boot looks up a single type.
  if (name === '' || /\s/.test(name)) return undefined;
  const at = INSTANCE_TYPE_TABLE.indexOf(`\n${name} `);
  if (at === -1) return undefined;
  return parseLine(INSTANCE_TYPE_TABLE.slice(at + 1, INSTANCE_TYPE_TABLE.indexOf('\n', at + 1)));
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
