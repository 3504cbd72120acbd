/**
 * What the fabric needs to know about the EC2 model, as plain views. The fabric reconciles the
 * kernel against these views, so it depends on this small interface and not on the model's
 * internals (`ec2-view.ts` adapts the emulator's Ec2State to it).
 */

/** An ENI attached to an instance, with every address EC2 says it owns. */
export interface AttachedEniView {
  eniId: string;
  /** The instance's primary ENI (device 0 on the default card): configured at launch. */
  primary: boolean;
  mac: string;
  deviceIndex: number;
  networkCardIndex: number;
  /** The subnet's CIDR, e.g. 10.0.1.0/24: gives the primary's prefix length and the gateway. */
  subnetCidr: string;
  primaryIp: string;
  /** Primary and secondary private IPv4 addresses. */
  privateIps: readonly string[];
  /** Delegated IPv4 prefixes (/28) in CIDR form. */
  prefixes: readonly string[];
  /** When EC2 attached it (ms since the epoch). */
  attachedAt: number;
}

export interface InstanceView {
  instanceId: string;
  /** False once the instance is terminated (its namespace must go). */
  running: boolean;
  enis: readonly AttachedEniView[];
  /** HttpPutResponseHopLimit: the TTL of IMDS's token answers to this instance. */
  imdsHopLimit: number;
}

export type ModelEvent =
  | 'instance-launched'
  | 'eni-attached'
  | 'eni-detached'
  | 'addresses-changed'
  | 'instance-terminated'
  | 'metadata-options-changed';

export interface FabricModel {
  /** The instance as EC2 sees it now, or undefined when EC2 does not know it (any more). */
  instance(instanceId: string): InstanceView | undefined;
  /** Calls `fn` with the instance id an event concerns (or undefined) on every model change. */
  subscribe(fn: (event: ModelEvent, instanceId: string | undefined) => void): () => void;
}
