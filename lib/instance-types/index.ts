/** The one lookup API for instance-type limits, shared by ipamd, the calculator and the local VPC. */
import { INSTANCE_TYPE_TABLE } from './data.generated.js';
import type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

export type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

const HYPERVISORS: Record<string, Hypervisor> = { n: 'nitro', x: 'xen', u: 'unknown' };

/**
 * One line of the generated table (format in data.generated.ts; the generator validated it). Indexed
 * access, no destructuring or closures: this runs cold, 1391 times for --all.
 */
function parseLine(line: string): InstanceTypeLimits {
  const f = line.split(' ');
  const cards = f[3]!.split(',');
  const networkCards: NetworkCard[] = new Array(cards.length);
  for (let i = 0; i < cards.length; i++) {
    const card = cards[i]!;
    const colon = card.indexOf(':');
    networkCards[i] = { index: Number(card.slice(0, colon)), maxEnis: Number(card.slice(colon + 1)) };
  }
  return {
    name: f[0]!,
    enis: Number(f[1]),
    ipv4PerEni: Number(f[2]),
    networkCards,
    defaultNetworkCardIndex: Number(f[4]),
    hypervisor: HYPERVISORS[f[5]!] ?? 'unknown',
    bareMetal: f[6] === '1',
    vcpus: f[7] === '-' ? null : Number(f[7]),
  };
}

let all: InstanceTypeLimits[] | undefined;
let byName: Map<string, InstanceTypeLimits> | undefined;

function table(): Map<string, InstanceTypeLimits> {
  if (!byName) {
    const lines = INSTANCE_TYPE_TABLE.trim().split('\n');
    all = new Array(lines.length);
    byName = new Map();
    for (let i = 0; i < lines.length; i++) {
      const t = parseLine(lines[i]!);
      all[i] = t;
      byName.set(t.name, t);
    }
  }
  return byName;
}

/**
 * Limits for a type from the generated table, or undefined when the table does not know it. The object is
 * shared with every other caller: read it, never write to it.
 */
export function lookupInstanceType(name: string): InstanceTypeLimits | undefined {
  if (byName) return byName.get(name);
  // Before the whole table is needed, parse only the type's own line: a node boot looks up one type.
  if (name === '' || /\s/.test(name)) return undefined;
  const start = INSTANCE_TYPE_TABLE.indexOf(`\n${name} `);
  if (start === -1) return undefined;
  return parseLine(INSTANCE_TYPE_TABLE.slice(start + 1, INSTANCE_TYPE_TABLE.indexOf('\n', start + 1)));
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
