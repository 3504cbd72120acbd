/**
 * The in-memory EC2 model behind the local VPC: VPCs, subnets, instances and ENIs with EC2's
 * limits and error codes. The Query-API server, the IMDS emulator and the namespace fabric all read
 * and change this one object.
 *
 * API (stable; the fabric and the servers depend on it):
 *   new Ec2State({ region?, accountId? })
 *   fixtures:  createVpc({cidr, tags?}), createSubnet({vpcId, cidr, az?, tags?}),
 *              createSecurityGroup({vpcId}), runInstance({instanceType, subnetId, ...}),
 *              terminateInstance(id), modifyInstanceMetadataOptions(id, {httpPutResponseHopLimit?})
 *   timing:    setAttachDelay(ms) (attaches complete after ms, 'attaching' meanwhile; default 0),
 *              setDetachDelay(ms) (detaches complete after ms, 'detaching' meanwhile; default 0),
 *              dispose() (cancels pending attaches and detaches; call on shutdown)
 *   EC2 ops:   createNetworkInterface, attachNetworkInterface, detachNetworkInterface,
 *              deleteNetworkInterface, modifyNetworkInterface, assignPrivateIpAddresses,
 *              unassignPrivateIpAddresses, createTags, deleteTags
 *   lookups:   getVpc/getSubnet/getInstance/getEni (undefined when unknown), vpcs(), subnets(),
 *              instances(), enis(), enisOfInstance(id) (every attachment, attaching ones included),
 *              visibleEnisOfInstance(id) (what the guest and IMDS see: attached or detaching),
 *              findEniByAddress(ip), instanceByAddress(ip),
 *              tagsOf(resourceId), subnetAvailable(subnetId)
 * Every op validates its input and throws Ec2Error with EC2's code and wording. Records and op
 * inputs are declared in model.ts (re-exported here); address bookkeeping is address-book.ts.
 *
 * Events (emitted synchronously right after the change; see docs/dev/contracts.md):
 *   'instance-launched'   { instanceId }                         (before its primary eni-attached)
 *   'eni-attached'        { eniId, instanceId, deviceIndex, networkCardIndex, mac, subnetId }  (when
 *                         the attachment completes: at once, or setAttachDelay ms after the call)
 *   'eni-detached'        { eniId, instanceId, mac }
 *   'addresses-changed'   { eniId }
 *   'instance-terminated' { instanceId }                         (after its ENIs were detached)
 *   'instance-changed'    { instanceId }  anything an instance's metadata shows changed (IMDS uses it)
 *   'metadata-options-changed' { instanceId }  the instance's IMDS options (hop limit) changed
 * Objects handed out are the live records typed read-only: do not mutate them.
 */
import { EventEmitter } from 'node:events';
import { lookupInstanceType, supportsPrefixDelegation } from '../../../lib/instance-types/index.js';
import { AddressBook, cidrParam } from './address-book.js';
import { AddressPool } from './address-pool.js';
import { Ec2Error, invalidParameterValue, malformedId, notFound } from './errors.js';
import { ID_PATTERNS, IdGenerator } from './ids.js';
import { cidrsOverlap, cidrWithin, parseCidr } from './ipv4.js';
import {
  type AssignInput,
  type CreateEniInput,
  DEFAULT_IMDS_HOP_LIMIT,
  type Ec2StateOptions,
  type Eni,
  type EniAttachment,
  type Instance,
  type InstanceMetadataOptions,
  MAX_IMDS_HOP_LIMIT,
  type ModifyEniInput,
  type RunInstanceInput,
  type Subnet,
  TAGS_PER_RESOURCE_LIMIT,
  type Tags,
  UNATTACHED_ENI_ADDRESS_LIMIT,
  type Vpc,
} from './model.js';

export * from './model.js';

function validHopLimit(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_IMDS_HOP_LIMIT) {
    throw invalidParameterValue(
      `Value (${n}) for parameter HttpPutResponseHopLimit is invalid. Expected a value between 1 and ${MAX_IMDS_HOP_LIMIT}.`,
    );
  }
  return n;
}

function tagMap(tags: Record<string, string> | undefined): Tags {
  return new Map(Object.entries(tags ?? {}));
}

/** EC2's zone id shape, e.g. us-west-2b -> usw2-az2. */
function azId(region: string, az: string): string {
  const [geo = '', dir = '', num = ''] = region.split('-');
  return `${geo}${dir.slice(0, 1)}${num}-az${az.charCodeAt(az.length - 1) - 96}`;
}

export class Ec2State extends EventEmitter {
  readonly region: string;
  readonly accountId: string;
  readonly ids = new IdGenerator();

  private readonly vpcMap = new Map<string, Vpc>();
  private readonly subnetMap = new Map<string, Subnet>();
  private readonly instanceMap = new Map<string, Instance>();
  private readonly eniMap = new Map<string, Eni>();
  private readonly attachmentIndex = new Map<string, string>(); // attachmentId -> eniId
  /** Every held address (single or prefix member) -> owning ENI id. Prefix members are indexed by base. */
  private readonly book = new AddressBook((id) => this.eniMap.get(id));
  private attachDelayMs = 0;
  private detachDelayMs = 0;
  private readonly pendingAttaches = new Map<string, NodeJS.Timeout>(); // eniId -> timer
  private readonly pendingDetaches = new Map<string, NodeJS.Timeout>(); // eniId -> timer

  constructor(opts: Ec2StateOptions = {}) {
    super();
    this.region = opts.region ?? 'us-west-2';
    this.accountId = opts.accountId ?? '123456789012';
  }

  // ---------------------------------------------------------------- fixtures

  createVpc(input: { cidr: string; tags?: Record<string, string> }): Vpc {
    const cidr = cidrParam(input.cidr, 'CidrBlock');
    if (cidr.prefixLength < 16 || cidr.prefixLength > 28) {
      throw new Ec2Error('InvalidVpc.Range', `The CIDR '${input.cidr}' is invalid (a VPC is /16 to /28).`);
    }
    const vpc: Vpc = {
      id: this.ids.next('vpc'),
      cidrBlocks: [input.cidr],
      defaultSecurityGroupId: this.ids.next('sg'),
      securityGroupIds: new Set(),
      tags: tagMap(input.tags),
    };
    vpc.securityGroupIds.add(vpc.defaultSecurityGroupId);
    this.vpcMap.set(vpc.id, vpc);
    return vpc;
  }

  /** Adds a security group to a VPC (the model tracks ids only, for validation). */
  createSecurityGroup(input: { vpcId: string }): string {
    const vpc = this.requireVpc(input.vpcId);
    const id = this.ids.next('sg');
    vpc.securityGroupIds.add(id);
    return id;
  }

  createSubnet(input: { vpcId: string; cidr: string; az?: string; tags?: Record<string, string> }): Subnet {
    const vpc = this.requireVpc(input.vpcId);
    const cidr = cidrParam(input.cidr, 'CidrBlock');
    if (cidr.prefixLength < 16 || cidr.prefixLength > 28) {
      throw new Ec2Error(
        'InvalidSubnet.Range',
        `The CIDR '${input.cidr}' is invalid (a subnet is /16 to /28).`,
      );
    }
    if (!vpc.cidrBlocks.some((b) => cidrWithin(cidr, parseCidr(b)))) {
      throw new Ec2Error('InvalidSubnet.Range', `The CIDR '${input.cidr}' is invalid for VPC ${vpc.id}.`);
    }
    for (const other of this.subnetMap.values()) {
      if (other.vpcId === vpc.id && cidrsOverlap(cidr, parseCidr(other.cidrBlock))) {
        throw new Ec2Error(
          'InvalidSubnet.Conflict',
          `The CIDR '${input.cidr}' conflicts with another subnet`,
        );
      }
    }
    const az = input.az ?? `${this.region}a`;
    if (!az.startsWith(this.region) || !/^[a-z]$/.test(az.slice(this.region.length))) {
      throw invalidParameterValue(
        `Value (${az}) for parameter availabilityZone is invalid. Subnets can currently only be created in ${this.region}a..${this.region}z.`,
      );
    }
    const subnet: Subnet = {
      id: this.ids.next('subnet'),
      vpcId: vpc.id,
      cidrBlock: input.cidr,
      availabilityZone: az,
      availabilityZoneId: azId(this.region, az),
      tags: tagMap(input.tags),
      pool: new AddressPool(cidr),
    };
    this.subnetMap.set(subnet.id, subnet);
    return subnet;
  }

  /** Launches an instance with its primary ENI (device 0, card 0, DeleteOnTermination=true). */
  runInstance(input: RunInstanceInput): Instance {
    checkTagCount(input.tags);
    checkTagCount(input.eniTags);
    const limits = lookupInstanceType(input.instanceType);
    if (!limits) {
      throw invalidParameterValue(`Invalid value '${input.instanceType}' for InstanceType.`);
    }
    const subnet = this.requireSubnet(input.subnetId);
    const groups = this.resolveGroups(subnet.vpcId, input.securityGroupIds);
    const hopLimit = validHopLimit(input.httpPutResponseHopLimit ?? DEFAULT_IMDS_HOP_LIMIT);
    const eni = this.buildEni({
      subnetId: subnet.id,
      description: '',
      groups,
      privateIpAddress: input.privateIpAddress,
      tags: input.eniTags,
    });
    const instance: Instance = {
      id: this.ids.next('i'),
      instanceType: limits.name,
      limits,
      imageId: input.imageId ?? 'ami-0123456789abcdef0',
      subnetId: subnet.id,
      vpcId: subnet.vpcId,
      availabilityZone: subnet.availabilityZone,
      state: 'running',
      launchTime: new Date(),
      primaryEniId: eni.id,
      privateIpAddress: eni.privateIps[0]!.address,
      securityGroupIds: groups,
      tags: tagMap(input.tags),
      metadataOptions: { httpPutResponseHopLimit: hopLimit },
    };
    this.instanceMap.set(instance.id, instance);
    eni.attachment = {
      attachmentId: this.ids.next('eni-attach'),
      instanceId: instance.id,
      deviceIndex: 0,
      networkCardIndex: limits.defaultNetworkCardIndex,
      deleteOnTermination: true,
      attachTime: instance.launchTime,
      status: 'attached',
    };
    eni.status = 'in-use';
    this.attachmentIndex.set(eni.attachment.attachmentId, eni.id);
    this.emit('instance-launched', { instanceId: instance.id });
    this.emitAttached(eni);
    return instance;
  }

  /**
   * Terminates an instance: attached ENIs with DeleteOnTermination are deleted, the others are
   * detached and left `available` (the leaked-ENI case). Terminating twice is a no-op, as in EC2.
   */
  terminateInstance(instanceId: string): Instance {
    const instance = this.requireInstance(instanceId);
    if (instance.state === 'terminated') return instance;
    for (const eni of this.enisOfInstance(instanceId)) {
      this.cancelPending(eni.id);
      const deleteIt = eni.attachment!.deleteOnTermination;
      this.detach(eni as Eni);
      if (deleteIt) this.destroyEni(eni as Eni);
    }
    instance.state = 'terminated';
    this.emit('instance-terminated', { instanceId });
    this.emit('instance-changed', { instanceId });
    return instance;
  }

  /** ModifyInstanceMetadataOptions: an absent option keeps its value, as in EC2. */
  modifyInstanceMetadataOptions(
    instanceId: string,
    input: { httpPutResponseHopLimit?: number },
  ): Readonly<InstanceMetadataOptions> {
    const instance = this.requireInstance(instanceId);
    if (instance.state !== 'running') {
      throw new Ec2Error(
        'IncorrectInstanceState',
        `The instance '${instance.id}' is not in a valid state for this operation.`,
      );
    }
    if (input.httpPutResponseHopLimit !== undefined) {
      instance.metadataOptions.httpPutResponseHopLimit = validHopLimit(input.httpPutResponseHopLimit);
    }
    this.emit('metadata-options-changed', { instanceId });
    return instance.metadataOptions;
  }

  // ---------------------------------------------------------------- ENI operations

  createNetworkInterface(input: CreateEniInput): Eni {
    const subnet = this.requireSubnet(input.subnetId);
    const groups = this.resolveGroups(subnet.vpcId, input.groups);
    return this.buildEni({ ...input, groups });
  }

  attachNetworkInterface(input: {
    eniId: string;
    instanceId: string;
    deviceIndex: number;
    networkCardIndex?: number;
  }): { attachmentId: string; networkCardIndex: number } {
    const eni = this.requireEni(input.eniId);
    const instance = this.requireInstance(input.instanceId);
    if (instance.state !== 'running') {
      throw new Ec2Error(
        'IncorrectInstanceState',
        `The instance '${instance.id}' is not in a valid state for this operation.`,
      );
    }
    if (eni.status !== 'available') {
      throw new Ec2Error('InvalidNetworkInterface.InUse', `Interface: [${eni.id}] in use.`);
    }
    const card = input.networkCardIndex ?? instance.limits.defaultNetworkCardIndex;
    const cardLimits = instance.limits.networkCards.find((c) => c.index === card);
    if (!cardLimits) {
      throw invalidParameterValue(
        `Network card index ${card} is not valid for instance type ${instance.instanceType}; valid indexes: ${instance.limits.networkCards.map((c) => c.index).join(', ')}.`,
      );
    }
    if (!Number.isInteger(input.deviceIndex) || input.deviceIndex < 0) {
      throw invalidParameterValue(`Value (${input.deviceIndex}) for parameter deviceIndex is invalid.`);
    }
    if (eni.availabilityZone !== instance.availabilityZone) {
      throw invalidParameterValue(
        `Network interface '${eni.id}' is in availability zone ${eni.availabilityZone}, instance '${instance.id}' is in ${instance.availabilityZone}.`,
      );
    }
    if (eni.vpcId !== instance.vpcId) {
      throw invalidParameterValue(
        `Network interface '${eni.id}' and instance '${instance.id}' are in different VPCs.`,
      );
    }
    const attached = this.enisOfInstance(instance.id);
    if (
      attached.some(
        (e) => e.attachment!.deviceIndex === input.deviceIndex && e.attachment!.networkCardIndex === card,
      )
    ) {
      throw invalidParameterValue(
        `Instance '${instance.id}' already has an interface attached at device index '${input.deviceIndex}'.`,
      );
    }
    const onCard = attached.filter((e) => e.attachment!.networkCardIndex === card).length;
    if (onCard + 1 > cardLimits.maxEnis) {
      throw new Ec2Error(
        'AttachmentLimitExceeded',
        `Interface count ${onCard + 1} exceeds the limit for ${instance.instanceType}`,
      );
    }
    if (eni.privateIps.length + eni.prefixes.length > instance.limits.ipv4PerEni) {
      throw new Ec2Error(
        'PrivateIpAddressLimitExceeded',
        `Network interface '${eni.id}' holds more addresses than ${instance.instanceType} allows per interface (${instance.limits.ipv4PerEni}).`,
      );
    }
    if (eni.prefixes.length > 0 && !supportsPrefixDelegation(instance.limits)) {
      throw prefixNotSupported(instance.instanceType);
    }
    const attachment: EniAttachment = {
      attachmentId: this.ids.next('eni-attach'),
      instanceId: instance.id,
      deviceIndex: input.deviceIndex,
      networkCardIndex: card,
      deleteOnTermination: false,
      attachTime: new Date(),
      status: 'attaching',
    };
    eni.attachment = attachment;
    eni.status = 'attaching';
    this.attachmentIndex.set(attachment.attachmentId, eni.id);
    const complete = () => {
      this.pendingAttaches.delete(eni.id);
      if (eni.attachment !== attachment || attachment.status !== 'attaching') return;
      attachment.status = 'attached';
      eni.status = 'in-use';
      this.emitAttached(eni);
    };
    if (this.attachDelayMs === 0) complete();
    else {
      const timer = setTimeout(complete, this.attachDelayMs);
      timer.unref();
      this.pendingAttaches.set(eni.id, timer);
    }
    return { attachmentId: attachment.attachmentId, networkCardIndex: card };
  }

  /**
   * Makes AttachNetworkInterface take `ms` to complete, as EC2's does: meanwhile the attachment and
   * the ENI are 'attaching', the instance has no link for it and IMDS does not list it.
   */
  setAttachDelay(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms)))
      throw new Error(`attach delay must be a finite number of ms >= 0, got ${ms}`);
    this.attachDelayMs = ms;
  }

  get attachDelay(): number {
    return this.attachDelayMs;
  }

  /** Detaches a secondary ENI; `force` is accepted (as EC2 does) but never frees the primary one. */
  detachNetworkInterface(attachmentId: string, _opts: { force?: boolean } = {}): Eni {
    const eniId = this.attachmentIndex.get(attachmentId);
    const eni = eniId ? this.eniMap.get(eniId) : undefined;
    if (!eni?.attachment) {
      if (!ID_PATTERNS.attachment.test(attachmentId)) {
        throw malformedId('InvalidNetworkInterfaceAttachmentId.Malformed', attachmentId, 'eni-attach-');
      }
      throw new Ec2Error(
        'InvalidAttachmentID.NotFound',
        `Interface attachment '${attachmentId}' does not exist.`,
      );
    }
    if (eni.attachment.deviceIndex === 0) {
      throw new Ec2Error(
        'OperationNotPermitted',
        `The network interface at device index 0 and networkCard index ${eni.attachment.networkCardIndex} cannot be detached.`,
      );
    }
    if (eni.attachment.status === 'detaching') return eni;
    this.cancelPending(eni.id); // a detach while still attaching ends the attach
    if (this.detachDelayMs === 0) {
      this.detach(eni);
      return eni;
    }
    eni.attachment.status = 'detaching';
    eni.status = 'detaching';
    const pendingAttachmentId = eni.attachment.attachmentId;
    const timer = setTimeout(() => {
      this.pendingDetaches.delete(eni.id);
      if (eni.attachment?.attachmentId === pendingAttachmentId) this.detach(eni);
    }, this.detachDelayMs);
    timer.unref();
    this.pendingDetaches.set(eni.id, timer);
    return eni;
  }

  /**
   * Makes DetachNetworkInterface take `ms` to complete, as EC2's does: meanwhile the attachment is
   * 'detaching', the ENI stays in-use (DeleteNetworkInterface fails) and still holds its slot.
   */
  setDetachDelay(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms)))
      throw new Error(`detach delay must be a finite number of ms >= 0, got ${ms}`);
    this.detachDelayMs = ms;
  }

  get detachDelay(): number {
    return this.detachDelayMs;
  }

  /** Cancels timers (pending attaches and detaches); call when the local VPC shuts down. */
  dispose(): void {
    for (const t of [...this.pendingAttaches.values(), ...this.pendingDetaches.values()]) clearTimeout(t);
    this.pendingAttaches.clear();
    this.pendingDetaches.clear();
  }

  deleteNetworkInterface(eniId: string): void {
    const eni = this.requireEni(eniId);
    if (eni.status !== 'available') {
      throw invalidParameterValue(`Network interface '${eni.id}' is currently in use.`);
    }
    this.destroyEni(eni);
  }

  modifyNetworkInterface(input: ModifyEniInput): void {
    const eni = this.requireEni(input.eniId);
    const set = [input.deleteOnTermination, input.groups, input.description, input.sourceDestCheck].filter(
      (v) => v !== undefined,
    );
    if (set.length !== 1) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'Exactly one attribute (Attachment, SecurityGroupId, Description or SourceDestCheck) must be given.',
      );
    }
    if (input.deleteOnTermination !== undefined) {
      if (!input.attachmentId)
        throw new Ec2Error(
          'MissingParameter',
          'The request must contain the parameter Attachment.AttachmentId',
        );
      if (!eni.attachment || eni.attachment.attachmentId !== input.attachmentId) {
        throw new Ec2Error(
          'InvalidAttachmentID.NotFound',
          `Interface attachment '${input.attachmentId}' does not exist for network interface '${eni.id}'.`,
        );
      }
      eni.attachment.deleteOnTermination = input.deleteOnTermination;
    }
    if (input.groups !== undefined) {
      if (input.groups.length === 0)
        throw new Ec2Error('MissingParameter', 'The request must contain the parameter SecurityGroupId');
      eni.groups = this.resolveGroups(eni.vpcId, input.groups);
      this.emitInstanceChanged(eni);
    }
    if (input.description !== undefined) eni.description = input.description;
    if (input.sourceDestCheck !== undefined) eni.sourceDestCheck = input.sourceDestCheck;
  }

  /** Assigns secondary addresses or /28 prefixes (never both in one call, as in EC2). */
  assignPrivateIpAddresses(input: AssignInput): { addresses: string[]; prefixes: string[] } {
    const eni = this.requireEni(input.eniId);
    const wantsIps = input.addresses !== undefined || input.count !== undefined;
    const wantsPrefixes = input.prefixes !== undefined || input.prefixCount !== undefined;
    if (wantsIps === wantsPrefixes) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        wantsIps
          ? 'Addresses and prefixes cannot be assigned in the same request.'
          : 'Specify PrivateIpAddress, SecondaryPrivateIpAddressCount, Ipv4Prefix or Ipv4PrefixCount.',
      );
    }
    if (input.addresses !== undefined && input.count !== undefined) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'Specify either PrivateIpAddress or SecondaryPrivateIpAddressCount, not both.',
      );
    }
    if (input.prefixes !== undefined && input.prefixCount !== undefined) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'Specify either Ipv4Prefix or Ipv4PrefixCount, not both.',
      );
    }
    const subnet = this.subnetMap.get(eni.subnetId)!;
    if (wantsIps) {
      this.checkSlots(eni, input.addresses?.length ?? input.count ?? 0);
      const { taken, movedFrom } = this.book.takeAddresses(eni, subnet, {
        explicit: input.addresses,
        count: input.count ?? 0,
        op: 'assign',
        allowReassignment: input.allowReassignment,
      });
      for (const from of movedFrom) this.emitAddressesChanged(from);
      this.emitAddressesChanged(eni);
      return { addresses: taken, prefixes: [] };
    }
    this.checkPrefixSupport(eni);
    this.checkSlots(eni, input.prefixes?.length ?? input.prefixCount ?? 0);
    const prefixes = this.book.takePrefixes(eni, subnet, {
      explicit: input.prefixes,
      count: input.prefixCount ?? 0,
    });
    this.emitAddressesChanged(eni);
    return { addresses: [], prefixes };
  }

  unassignPrivateIpAddresses(input: { eniId: string; addresses?: string[]; prefixes?: string[] }): void {
    const eni = this.requireEni(input.eniId);
    const addresses = input.addresses ?? [];
    const prefixes = input.prefixes ?? [];
    if (addresses.length === 0 && prefixes.length === 0) {
      throw new Ec2Error(
        'MissingParameter',
        'The request must contain the parameter PrivateIpAddress or Ipv4Prefix',
      );
    }
    for (const a of addresses) {
      const ip = eni.privateIps.find((p) => p.address === a);
      if (!ip)
        throw invalidParameterValue(
          `Some of the specified addresses are not assigned to interface ${eni.id}`,
        );
      if (ip.primary)
        throw invalidParameterValue(
          `The primary private IP address ${a} of interface ${eni.id} cannot be unassigned.`,
        );
    }
    for (const p of prefixes) {
      if (!eni.prefixes.includes(p))
        throw invalidParameterValue(`Some of the specified prefixes are not assigned to interface ${eni.id}`);
    }
    const subnet = this.subnetMap.get(eni.subnetId)!;
    for (const a of addresses) this.book.releaseAddress(eni, subnet, a);
    for (const p of prefixes) this.book.releasePrefix(eni, subnet, p);
    this.emitAddressesChanged(eni);
  }

  /**
   * Adds or overwrites tags on every resource, or on none: TagLimitExceeded when a resource would
   * end up with more than 50 user tags (EC2 User Guide, "Tag restrictions").
   */
  createTags(resourceIds: string[], tags: Record<string, string>): void {
    const targets = resourceIds.map((id) => [id, this.taggable(id)] as const);
    for (const [id, t] of targets) {
      const added = Object.keys(tags).filter((k) => !t.has(k)).length;
      const user = [...t.keys()].filter((k) => !k.startsWith('aws:')).length;
      if (user + added > TAGS_PER_RESOURCE_LIMIT) throw tagLimitExceeded(id);
    }
    for (const [, t] of targets) for (const [k, v] of Object.entries(tags)) t.set(k, v);
  }

  /**
   * Deletes tags as DeleteTags documents it: a key without a value deletes the key whatever its
   * value, a key with a value (even '') only when the value matches, and no tags at all deletes
   * every user tag (never the aws: ones).
   */
  deleteTags(resourceIds: string[], tags: Record<string, string | undefined> | undefined): void {
    const targets = resourceIds.map((id) => this.taggable(id));
    for (const t of targets) {
      if (tags === undefined) {
        for (const k of [...t.keys()]) if (!k.startsWith('aws:')) t.delete(k);
        continue;
      }
      for (const [k, v] of Object.entries(tags)) if (v === undefined || t.get(k) === v) t.delete(k);
    }
  }

  // ---------------------------------------------------------------- lookups

  getVpc(id: string): Readonly<Vpc> | undefined {
    return this.vpcMap.get(id);
  }
  getSubnet(id: string): Readonly<Subnet> | undefined {
    return this.subnetMap.get(id);
  }
  getInstance(id: string): Readonly<Instance> | undefined {
    return this.instanceMap.get(id);
  }
  getEni(id: string): Readonly<Eni> | undefined {
    return this.eniMap.get(id);
  }
  vpcs(): Readonly<Vpc>[] {
    return [...this.vpcMap.values()];
  }
  subnets(): Readonly<Subnet>[] {
    return [...this.subnetMap.values()];
  }
  instances(): Readonly<Instance>[] {
    return [...this.instanceMap.values()];
  }
  enis(): Readonly<Eni>[] {
    return [...this.eniMap.values()];
  }

  /** The ENIs the instance's guest and IMDS see: attachments that completed (detaching ones too). */
  visibleEnisOfInstance(instanceId: string): Readonly<Eni>[] {
    return this.enisOfInstance(instanceId).filter((e) => e.attachment!.status !== 'attaching');
  }

  /** The instance's attached ENIs, ordered by network card then device index. */
  enisOfInstance(instanceId: string): Readonly<Eni>[] {
    return [...this.eniMap.values()]
      .filter((e) => e.attachment?.instanceId === instanceId)
      .sort(
        (a, b) =>
          a.attachment!.networkCardIndex - b.attachment!.networkCardIndex ||
          a.attachment!.deviceIndex - b.attachment!.deviceIndex,
      );
  }

  /** The ENI holding `ip`, as a private address or as a member of one of its prefixes. */
  findEniByAddress(ip: string): Readonly<Eni> | undefined {
    const id = this.book.ownerOf(ip);
    return id ? this.eniMap.get(id) : undefined;
  }

  /** The running instance whose attached ENI holds `ip`. */
  instanceByAddress(ip: string): Readonly<Instance> | undefined {
    const eni = this.findEniByAddress(ip);
    return eni?.attachment ? this.instanceMap.get(eni.attachment.instanceId) : undefined;
  }

  /** Free addresses in a subnet (EC2's AvailableIpAddressCount). */
  subnetAvailable(subnetId: string): number {
    return this.requireSubnet(subnetId).pool.available;
  }

  /** The tag map of any resource id (vpc-, subnet-, i-, eni-); throws the matching NotFound. */
  tagsOf(resourceId: string): ReadonlyMap<string, string> {
    return this.taggable(resourceId);
  }

  /** Address slots an ENI may use: its instance type's figure when attached. */
  addressLimitOf(eni: Readonly<Eni>): number {
    if (!eni.attachment) return UNATTACHED_ENI_ADDRESS_LIMIT;
    return this.instanceMap.get(eni.attachment.instanceId)!.limits.ipv4PerEni;
  }

  // ---------------------------------------------------------------- validation helpers

  requireVpc(id: string): Vpc {
    const v = this.vpcMap.get(id);
    if (v) return v;
    if (!ID_PATTERNS.vpc.test(id)) throw malformedId('InvalidVpcID.Malformed', id, 'vpc-');
    throw notFound('VpcID', 'vpc', id);
  }
  requireSubnet(id: string): Subnet {
    const s = this.subnetMap.get(id);
    if (s) return s;
    if (!ID_PATTERNS.subnet.test(id)) throw malformedId('InvalidSubnetID.Malformed', id, 'subnet-');
    throw notFound('SubnetID', 'subnet', id);
  }
  requireInstance(id: string): Instance {
    const i = this.instanceMap.get(id);
    if (i) return i;
    if (!ID_PATTERNS.instance.test(id)) throw malformedId('InvalidInstanceID.Malformed', id, 'i-');
    throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
  }
  requireEni(id: string): Eni {
    const e = this.eniMap.get(id);
    if (e) return e;
    if (!ID_PATTERNS.eni.test(id)) throw malformedId('InvalidNetworkInterfaceId.Malformed', id, 'eni-');
    throw notFound('NetworkInterfaceID', 'networkInterface', id);
  }

  // ---------------------------------------------------------------- internals

  private resolveGroups(vpcId: string, groups: string[] | undefined): string[] {
    const vpc = this.vpcMap.get(vpcId)!;
    if (!groups || groups.length === 0) return [vpc.defaultSecurityGroupId];
    for (const g of groups) {
      if (!ID_PATTERNS.securityGroup.test(g)) throw malformedId('InvalidGroupId.Malformed', g, 'sg-');
      if (!vpc.securityGroupIds.has(g)) {
        throw new Ec2Error(
          'InvalidGroup.NotFound',
          `The security group '${g}' does not exist in VPC '${vpcId}'`,
        );
      }
    }
    return [...new Set(groups)];
  }

  private buildEni(input: CreateEniInput & { groups: string[] }): Eni {
    checkTagCount(input.tags);
    const subnet = this.requireSubnet(input.subnetId);
    const explicitSecondaries = input.secondaryAddresses ?? [];
    const secondaryCount = input.secondaryCount ?? 0;
    const wantsPrefixes = (input.prefixes?.length ?? 0) > 0 || (input.prefixCount ?? 0) > 0;
    if (wantsPrefixes && (explicitSecondaries.length > 0 || secondaryCount > 0)) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'Addresses and prefixes cannot be assigned in the same request.',
      );
    }
    if (explicitSecondaries.length > 0 && secondaryCount > 0) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'A count of secondary addresses cannot be given together with specific secondary addresses.',
      );
    }
    if (input.prefixes?.length && input.prefixCount) {
      throw new Ec2Error(
        'InvalidParameterCombination',
        'Specify either Ipv4Prefix or Ipv4PrefixCount, not both.',
      );
    }
    const eni: Eni = {
      id: this.ids.next('eni'),
      subnetId: subnet.id,
      vpcId: subnet.vpcId,
      availabilityZone: subnet.availabilityZone,
      mac: this.ids.mac(),
      description: input.description ?? '',
      groups: input.groups,
      tags: tagMap(input.tags),
      status: 'available',
      attachment: undefined,
      privateIps: [],
      prefixes: [],
      sourceDestCheck: true,
      createdAt: new Date(),
      ownerId: this.accountId,
    };
    // Check the whole request before taking anything, so a failed create leaves the subnet untouched.
    const total =
      1 +
      explicitSecondaries.length +
      secondaryCount +
      (input.prefixes?.length ?? 0) +
      (input.prefixCount ?? 0);
    if (total > UNATTACHED_ENI_ADDRESS_LIMIT) {
      throw new Ec2Error('PrivateIpAddressLimitExceeded', 'Number of private addresses will exceed limit.');
    }
    const primary = input.privateIpAddress !== undefined ? [input.privateIpAddress] : undefined;
    try {
      this.book.takeAddresses(eni, subnet, { explicit: primary, count: 1, op: 'create' });
      eni.privateIps[0]!.primary = true;
      this.book.takeAddresses(eni, subnet, {
        explicit: explicitSecondaries.length ? explicitSecondaries : undefined,
        count: secondaryCount,
        op: 'create',
      });
      if (wantsPrefixes)
        this.book.takePrefixes(eni, subnet, { explicit: input.prefixes, count: input.prefixCount ?? 0 });
    } catch (e) {
      this.book.releaseAll(eni, subnet); // a failed create leaves the subnet as it was
      throw e;
    }
    this.eniMap.set(eni.id, eni);
    return eni;
  }

  /** PrivateIpAddressLimitExceeded when `n` more addresses or prefixes would not fit the ENI. */
  private checkSlots(eni: Eni, n: number): void {
    if (eni.privateIps.length + eni.prefixes.length + n > this.addressLimitOf(eni)) {
      throw new Ec2Error('PrivateIpAddressLimitExceeded', 'Number of private addresses will exceed limit.');
    }
  }

  private checkPrefixSupport(eni: Eni): void {
    if (!eni.attachment) return;
    const instance = this.instanceMap.get(eni.attachment.instanceId)!;
    if (!supportsPrefixDelegation(instance.limits)) throw prefixNotSupported(instance.instanceType);
  }

  private cancelPending(eniId: string): void {
    for (const pending of [this.pendingAttaches, this.pendingDetaches]) {
      const t = pending.get(eniId);
      if (t) clearTimeout(t);
      pending.delete(eniId);
    }
  }

  private detach(eni: Eni): void {
    const att = eni.attachment!;
    this.attachmentIndex.delete(att.attachmentId);
    eni.attachment = undefined;
    eni.status = 'available';
    this.emit('eni-detached', { eniId: eni.id, instanceId: att.instanceId, mac: eni.mac });
    this.emit('instance-changed', { instanceId: att.instanceId });
  }

  private destroyEni(eni: Eni): void {
    const subnet = this.subnetMap.get(eni.subnetId)!;
    this.book.releaseAll(eni, subnet);
    this.eniMap.delete(eni.id);
  }

  private taggable(id: string): Tags {
    if (id.startsWith('vpc-')) return this.requireVpc(id).tags;
    if (id.startsWith('subnet-')) return this.requireSubnet(id).tags;
    if (id.startsWith('i-')) return this.requireInstance(id).tags;
    if (id.startsWith('eni-')) return this.requireEni(id).tags;
    throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
  }

  private emitAttached(eni: Eni): void {
    const a = eni.attachment!;
    this.emit('eni-attached', {
      eniId: eni.id,
      instanceId: a.instanceId,
      deviceIndex: a.deviceIndex,
      networkCardIndex: a.networkCardIndex,
      mac: eni.mac,
      subnetId: eni.subnetId,
    });
    this.emit('instance-changed', { instanceId: a.instanceId });
  }

  private emitAddressesChanged(eni: Eni): void {
    this.emit('addresses-changed', { eniId: eni.id });
    this.emitInstanceChanged(eni);
  }

  private emitInstanceChanged(eni: Eni): void {
    if (eni.attachment) this.emit('instance-changed', { instanceId: eni.attachment.instanceId });
  }
}

function tagLimitExceeded(resourceId: string): Ec2Error {
  return new Ec2Error(
    'TagLimitExceeded',
    `The maximum number of tags (${TAGS_PER_RESOURCE_LIMIT}) for resource ${resourceId} has been exceeded.`,
  );
}

/** TagSpecification and launch tags: more than 50 user tags for one new resource is TagLimitExceeded. */
function checkTagCount(tags: Record<string, string> | undefined): void {
  const n = Object.keys(tags ?? {}).filter((k) => !k.startsWith('aws:')).length;
  if (n > TAGS_PER_RESOURCE_LIMIT) throw tagLimitExceeded('(new resource)');
}

function prefixNotSupported(instanceType: string): Ec2Error {
  return invalidParameterValue(
    `Prefix delegation is not supported for instance type ${instanceType}: prefixes can only be assigned to interfaces of instances built on the Nitro System.`,
  );
}
