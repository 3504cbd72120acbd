/** Networking limits of one EC2 instance type: what decides how many pods a node can address. */
export interface NetworkCard {
  index: number;
  /** ENIs that can attach on this card. */
  maxEnis: number;
}

/** EC2's `Hypervisor` field; bare-metal types report none, which is `unknown` here. */
export type Hypervisor = 'nitro' | 'xen' | 'unknown';

export interface InstanceTypeLimits {
  name: string;
  /** ENIs that can attach on the default network card. */
  enis: number;
  /** IPv4 addresses per ENI, the ENI's primary address included. */
  ipv4PerEni: number;
  networkCards: NetworkCard[];
  defaultNetworkCardIndex: number;
  hypervisor: Hypervisor;
  bareMetal: boolean;
  /** null when no source gives a figure. */
  vcpus: number | null;
}
