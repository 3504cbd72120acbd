/**
 * The records of the EC2 model (what Ec2State holds and hands out read-only) and the inputs of its
 * operations. See state.ts for the operations.
 */
import type { InstanceTypeLimits } from '../../../lib/instance-types/index.js';
import type { AddressPool } from './address-pool.js';

/** An ENI that is not attached can hold as many addresses as the largest instance type allows. */
export const UNATTACHED_ENI_ADDRESS_LIMIT = 50;

export type Tags = Map<string, string>;

/** User tags one resource may carry (EC2 User Guide, "Tag restrictions"); aws: tags do not count. */
export const TAGS_PER_RESOURCE_LIMIT = 50;

export interface Vpc {
  id: string;
  cidrBlocks: string[];
  defaultSecurityGroupId: string;
  securityGroupIds: Set<string>;
  tags: Tags;
}

export interface Subnet {
  id: string;
  vpcId: string;
  cidrBlock: string;
  availabilityZone: string;
  availabilityZoneId: string;
  tags: Tags;
  pool: AddressPool;
}

export interface EniAttachment {
  attachmentId: string;
  instanceId: string;
  deviceIndex: number;
  networkCardIndex: number;
  deleteOnTermination: boolean;
  attachTime: Date;
  /** 'attaching' / 'detaching' while an attach / detach completes (see setAttachDelay, setDetachDelay). */
  status: 'attaching' | 'attached' | 'detaching';
}

export interface PrivateIp {
  address: string;
  primary: boolean;
}

export type EniStatus = 'available' | 'attaching' | 'in-use' | 'detaching';

export interface Eni {
  id: string;
  subnetId: string;
  vpcId: string;
  availabilityZone: string;
  mac: string;
  description: string;
  groups: string[];
  tags: Tags;
  status: EniStatus;
  attachment: EniAttachment | undefined;
  /** Primary address first, then secondaries in assignment order. */
  privateIps: PrivateIp[];
  /** Delegated /28 prefixes in CIDR notation, in assignment order. */
  prefixes: string[];
  sourceDestCheck: boolean;
  createdAt: Date;
  ownerId: string;
}

export type InstanceStateName = 'running' | 'terminated';

export interface Instance {
  id: string;
  instanceType: string;
  limits: InstanceTypeLimits;
  imageId: string;
  subnetId: string;
  vpcId: string;
  availabilityZone: string;
  state: InstanceStateName;
  launchTime: Date;
  primaryEniId: string;
  /** The primary ENI's primary address; kept after termination for DescribeInstances. */
  privateIpAddress: string;
  securityGroupIds: string[];
  tags: Tags;
  /** The instance's IMDS options (MetadataOptions); only the hop limit is modelled. */
  metadataOptions: InstanceMetadataOptions;
}

export interface InstanceMetadataOptions {
  /**
   * IP TTL of IMDS's token (PUT) responses: 1 reaches the instance's own stack only; a pod one
   * routed hop behind it needs 2 (the fabric sets it on the packets, see fabric/imds-hops.ts).
   */
  httpPutResponseHopLimit: number;
}

/** EC2's default hop limit when the launch does not set one (RunInstances MetadataOptions). */
export const DEFAULT_IMDS_HOP_LIMIT = 1;
export const MAX_IMDS_HOP_LIMIT = 64;

export interface Ec2StateOptions {
  region?: string;
  accountId?: string;
}

export interface CreateEniInput {
  subnetId: string;
  description?: string;
  groups?: string[];
  /** Primary address; chosen from the subnet when absent. */
  privateIpAddress?: string;
  /** Explicit secondary addresses. */
  secondaryAddresses?: string[];
  secondaryCount?: number;
  prefixes?: string[];
  prefixCount?: number;
  tags?: Record<string, string>;
}

export interface AssignInput {
  eniId: string;
  addresses?: string[];
  count?: number;
  prefixes?: string[];
  prefixCount?: number;
  allowReassignment?: boolean;
}

export interface ModifyEniInput {
  eniId: string;
  attachmentId?: string;
  deleteOnTermination?: boolean;
  groups?: string[];
  description?: string;
  sourceDestCheck?: boolean;
}

export interface RunInstanceInput {
  instanceType: string;
  subnetId: string;
  securityGroupIds?: string[];
  privateIpAddress?: string;
  imageId?: string;
  tags?: Record<string, string>;
  /** Tags for the primary ENI. */
  eniTags?: Record<string, string>;
  /** MetadataOptions.HttpPutResponseHopLimit (1-64); default DEFAULT_IMDS_HOP_LIMIT. */
  httpPutResponseHopLimit?: number;
}
