/**
 * The doing half of the pool ("do"): carries out one planned action against EC2, the host and the
 * datastore, in the order that keeps every step safe to interrupt:
 *  - grow: EC2 first, then host networking, then the datastore (an address is never handed out
 *    before it and its ENI's routes exist);
 *  - shrink: the datastore first (nothing can be handed out meanwhile), then EC2; put back on failure.
 * The ENIs of one create-enis action are created concurrently (each at the device number the planner
 * gave it); Ec2Api's queues keep the burst within the configured EC2 call rates.
 */
import type { Ec2Api } from '../aws/ec2.js';
import type { Ec2Error } from '../aws/errors.js';
import type { Imds, ImdsEni, InstanceIdentity } from '../aws/imds.js';
import type { Datastore, EniInfo } from '../datastore/datastore.js';
import type { Logger } from '../log.js';
import type { NewEni, PoolAction } from './planner.js';
import type { SubnetPicker } from './subnets.js';

export const TAG_INSTANCE_ID = 'node.k8s.amazonaws.com/instance_id';
export const TAG_CREATED_AT = 'node.k8s.amazonaws.com/createdAt';
export const TAG_NO_MANAGE = 'node.k8s.amazonaws.com/no_manage';
export const TAG_CLUSTER = 'cluster.k8s.amazonaws.com/name';

/** Host-side networking for ENIs (F's hostnet modules in the daemon; fakes in unit tests). */
export interface HostNetwork {
  setupEni(eni: EniInfo): Promise<void>;
  teardownEni(eni: EniInfo): Promise<void>;
}

export interface ExecutorDeps {
  ec2: Ec2Api;
  imds: Imds;
  ds: Datastore;
  identity: InstanceIdentity;
  subnets: SubnetPicker;
  host: HostNetwork;
  log: Logger;
  /** Tags every ENI ipamd creates carries (instance id, cluster, ADDITIONAL_ENI_TAGS). */
  eniTags: Record<string, string>;
  /** How long a new ENI may take to show in IMDS. */
  imdsWaitMs?: number;
  pollMs?: number;
  /**
   * EC2 refused an attach because the device index holds an ENI ipamd does not know (one it attached
   * before a crash, or someone else's): the daemon reconciles soon, which adopts it, instead of this
   * executor retrying the same index until the next periodic reconciliation.
   */
  onStrayAttachment?: (deviceNumber: number) => void;
}

/** EC2's words when the device index is taken. */
const DEVICE_INDEX_TAKEN = /already has an interface attached at device index/i;

function isSubnetExhaustion(err: unknown): err is Ec2Error {
  const kind = (err as Ec2Error | undefined)?.kind;
  return kind === 'subnet_full' || kind === 'no_cidr_block';
}

export class PoolExecutor {
  constructor(private readonly d: ExecutorDeps) {}

  async run(action: PoolAction): Promise<void> {
    switch (action.kind) {
      case 'assign':
        return this.assign(action.eniId, action.unit, action.count);
      case 'create-enis':
        return this.createEnis(action.unit, action.enis);
      case 'release':
        return this.release(action.eniId, action.unit, action.items);
      case 'delete-eni':
        return this.deleteEni(action.eniId);
      default:
        return;
    }
  }

  private async assign(eniId: string, unit: 'ip' | 'prefix', count: number): Promise<void> {
    const { ec2, ds, subnets } = this.d;
    const eni = ds.getEni(eniId);
    if (!eni) throw new Error(`ENI ${eniId} vanished before addresses could be added`);
    let got: string[];
    try {
      got = await ec2.assignAddresses(eniId, eni.subnetId, unit, count);
    } catch (err) {
      if (isSubnetExhaustion(err)) subnets.markFull(eni.subnetId, err.message);
      throw err;
    }
    subnets.markOk(eni.subnetId);
    if (unit === 'ip') ds.addIps(eniId, got);
    else ds.addPrefixes(eniId, got);
    this.d.log.info(
      { eniId, unit, added: got },
      `added ${got.length} ${unit === 'ip' ? 'IP(s)' : 'prefix(es)'}`,
    );
  }

  /**
   * Creates every ENI of the action at once and waits for all of them: the ones that succeed are kept
   * (set up and in the datastore) even when a sibling fails; any failure is rethrown afterwards so
   * the manager records it and retries what is still missing on a later tick.
   */
  private async createEnis(unit: 'ip' | 'prefix', enis: NewEni[]): Promise<void> {
    const { subnets, log } = this.d;
    const devices = enis.map((e) => e.deviceNumber);
    if (new Set(devices).size !== devices.length) {
      throw new Error(`refusing to create ENIs at duplicate device numbers ${devices.join(', ')}`);
    }
    // One discovery read per batch, not one per ENI.
    await subnets
      .refresh()
      .catch((err) => log.warn({ err: (err as Error).message }, 'subnet discovery failed'));
    // Concurrent creations that hit the same full subnet count as one failure for its backoff.
    const markedFull = new Set<string>();
    const outcomes = await Promise.allSettled(
      enis.map((e) => this.createEni(e.deviceNumber, unit, e.count, markedFull)),
    );
    const failed = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
    if (failed.length === 0) return;
    if (failed.length === 1 && enis.length === 1) throw failed[0];
    const messages = [...new Set(failed.map((e) => e.message))].join('; ');
    throw new AggregateError(failed, `${failed.length} of ${enis.length} ENI creations failed: ${messages}`);
  }

  private async createEni(
    deviceNumber: number,
    unit: 'ip' | 'prefix',
    count: number,
    markedFull: Set<string>,
  ): Promise<void> {
    const { ec2, subnets, identity, log } = this.d;
    const subnet = subnets.pick();
    if (!subnet) throw new Error(subnets.blockedReason() ?? 'no subnet available for a new ENI');
    let created: Awaited<ReturnType<Ec2Api['createNetworkInterface']>>;
    try {
      created = await ec2.createNetworkInterface({
        subnetId: subnet.subnetId,
        securityGroups: subnet.securityGroups,
        unit,
        count,
        description: `aws-K8S-${identity.instanceId}`,
        tags: { ...this.d.eniTags, [TAG_CREATED_AT]: new Date().toISOString() },
      });
    } catch (err) {
      if (isSubnetExhaustion(err) && !markedFull.has(subnet.subnetId)) {
        markedFull.add(subnet.subnetId);
        subnets.markFull(subnet.subnetId, err.message);
      }
      throw err;
    }
    subnets.markOk(subnet.subnetId);
    log.info({ eniId: created.id, subnetId: subnet.subnetId, deviceNumber }, 'ENI created');

    let attachmentId: string;
    try {
      attachmentId = await ec2.attachNetworkInterface(created.id, identity.instanceId, deviceNumber);
    } catch (err) {
      // An unattached ENI is a leak: remove it now rather than waiting for leaked-ENI cleanup.
      log.warn({ eniId: created.id, err: (err as Error).message }, 'attach failed; deleting the new ENI');
      if (DEVICE_INDEX_TAKEN.test((err as Error).message)) this.d.onStrayAttachment?.(deviceNumber);
      await ec2
        .deleteNetworkInterface(created.id)
        .catch((e) =>
          log.error({ eniId: created.id, err: (e as Error).message }, 'could not delete; cleanup will'),
        );
      throw err;
    }
    try {
      await ec2.setDeleteOnTermination(created.id, attachmentId);
    } catch (err) {
      log.error(
        { eniId: created.id, err: (err as Error).message },
        'could not set DeleteOnTermination; the ENI may outlive the instance (leaked-ENI cleanup covers it)',
      );
    }

    let info: EniInfo | null = null;
    try {
      const seen = await this.waitForImds(created.mac);
      info = {
        id: created.id,
        mac: created.mac,
        deviceNumber,
        subnetId: created.subnetId,
        subnetCidr: seen.subnetCidr,
        primaryIp: created.primaryIp,
        attachmentId,
        isPrimary: false,
        forPods: true,
      };
      await this.d.host.setupEni(info);
    } catch (err) {
      // Attached but not usable: an ENI left attached and unknown would hold its device index forever.
      log.warn(
        { eniId: created.id, err: (err as Error).message },
        'new ENI not usable; detaching and deleting it',
      );
      await this.discardAttached(created.id, attachmentId, info);
      throw err;
    }
    this.d.ds.addEni(info);
    this.d.ds.addIps(created.id, created.secondaryIps);
    this.d.ds.addPrefixes(created.id, created.prefixes);
    log.info(
      {
        eniId: created.id,
        deviceNumber,
        ips: created.secondaryIps.length,
        prefixes: created.prefixes.length,
      },
      'ENI attached and ready',
    );
  }

  /** IMDS shows a newly attached ENI after a short delay; its subnet CIDR comes from there. */
  private async waitForImds(mac: string): Promise<ImdsEni> {
    const waitMs = this.d.imdsWaitMs ?? 30_000;
    const deadline = Date.now() + waitMs;
    let lastError: Error | null = null;
    for (;;) {
      // A slow or failing IMDS answer is retried until the deadline, like an ENI it does not show yet.
      try {
        const macs = await this.d.imds.macs();
        if (macs.includes(mac)) return await this.d.imds.eni(mac);
      } catch (err) {
        lastError = err as Error;
      }
      if (Date.now() > deadline) {
        const why = lastError ? ` (last IMDS error: ${lastError.message})` : '';
        throw new Error(`ENI ${mac} attached but not visible in IMDS after ${waitMs} ms${why}`);
      }
      await new Promise((r) => setTimeout(r, this.d.pollMs ?? 200));
    }
  }

  private async release(eniId: string, unit: 'ip' | 'prefix', items: string[]): Promise<void> {
    const { ds, ec2, log } = this.d;
    const { removed } = unit === 'ip' ? ds.removeIps(eniId, items) : ds.removePrefixes(eniId, items);
    if (removed.length === 0) return;
    try {
      await ec2.unassignAddresses(eniId, unit, removed);
    } catch (err) {
      if (unit === 'ip') ds.addIps(eniId, removed);
      else ds.addPrefixes(eniId, removed);
      throw err;
    }
    log.info(
      { eniId, unit, released: removed },
      `released ${removed.length} ${unit === 'ip' ? 'IP(s)' : 'prefix(es)'}`,
    );
  }

  private async deleteEni(eniId: string): Promise<void> {
    const { ds, ec2, log } = this.d;
    const eni = ds.getEni(eniId);
    if (!eni || eni.isPrimary) return;
    const snapshot = { ...eni, secondaryIps: [...eni.secondaryIps], prefixes: [...eni.prefixes] };
    if (!ds.removeEni(eniId)) return; // a pod took an address meanwhile
    await this.d.host
      .teardownEni(eni)
      .catch((err) => log.warn({ eniId, err: (err as Error).message }, 'ENI host teardown failed'));
    try {
      if (eni.attachmentId) await ec2.detachNetworkInterface(eni.attachmentId, eniId);
    } catch (err) {
      // Still attached: keep managing it.
      ds.addEni(snapshot);
      ds.addIps(eniId, snapshot.secondaryIps);
      ds.addPrefixes(eniId, snapshot.prefixes);
      await this.d.host.setupEni(snapshot).catch(() => undefined);
      throw err;
    }
    try {
      await this.waitAvailable(eniId);
    } catch (err) {
      // Detached but not yet available: leaked-ENI cleanup deletes it later.
      log.warn({ eniId, err: (err as Error).message }, 'ENI detached; delete deferred to leaked-ENI cleanup');
      return;
    }
    await ec2
      .deleteNetworkInterface(eniId)
      .catch((err) =>
        log.warn(
          { eniId, err: (err as Error).message },
          'delete after detach failed; leaked-ENI cleanup will retry',
        ),
      );
    log.info({ eniId }, 'ENI detached and deleted');
  }

  /** Undoes a creation that got as far as the attach. Failures leave it to reconciliation / leaked-ENI cleanup. */
  private async discardAttached(eniId: string, attachmentId: string, info: EniInfo | null): Promise<void> {
    const { ec2, log } = this.d;
    if (info) await this.d.host.teardownEni(info).catch(() => undefined);
    try {
      await ec2.detachNetworkInterface(attachmentId, eniId);
      await this.waitAvailable(eniId);
      await ec2.deleteNetworkInterface(eniId);
      log.info({ eniId }, 'unusable new ENI detached and deleted');
    } catch (err) {
      log.error(
        { eniId, err: (err as Error).message },
        'could not remove the unusable new ENI; reconciliation adopts it if it stays attached, leaked-ENI cleanup deletes it otherwise',
      );
    }
  }

  private async waitAvailable(eniId: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const [eni] = await this.d.ec2.describeNetworkInterfaces([eniId]);
      if (!eni || eni.status === 'available') return;
      if (Date.now() > deadline) throw new Error(`ENI ${eniId} still ${eni.status} 30 s after detach`);
      await new Promise((r) => setTimeout(r, this.d.pollMs ?? 500));
    }
  }
}
