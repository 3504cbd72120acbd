/** The one lookup API for instance-type limits, shared by ipamd, the calculator and the local VPC. */
import { INSTANCE_TYPE_ROWS } from './data.generated.js';
import type { Hypervisor, InstanceTypeLimits } from './types.js';

export type { Hypervisor, InstanceTypeLimits, NetworkCard } from './types.js';

let byName: Map<string, InstanceTypeLimits> | undefined;

function table(): Map<string, InstanceTypeLimits> {
  if (!byName) {
    byName = new Map();
    for (const [
      name,
      enis,
      ipv4PerEni,
      cards,
      defaultCard,
      hypervisor,
      bareMetal,
      vcpus,
    ] of INSTANCE_TYPE_ROWS) {
      byName.set(name, {
        name,
        enis,
        ipv4PerEni,
        networkCards: cards.map(([index, maxEnis]) => ({ index, maxEnis })),
        defaultNetworkCardIndex: defaultCard,
        hypervisor: hypervisor as Hypervisor,
        bareMetal: bareMetal === 1,
        vcpus,
      });
    }
  }
  return byName;
}

/** Limits for a type from the generated table, or undefined when the table does not know it. */
export function lookupInstanceType(name: string): InstanceTypeLimits | undefined {
  return table().get(name);
}

/** Every known type, sorted by name. */
export function allInstanceTypes(): InstanceTypeLimits[] {
  return [...table().values()];
}

/** Prefix delegation needs the Nitro system; bare-metal types of Nitro families run on it too. */
export function supportsPrefixDelegation(t: InstanceTypeLimits): boolean {
  return t.hypervisor === 'nitro' || t.bareMetal;
}
