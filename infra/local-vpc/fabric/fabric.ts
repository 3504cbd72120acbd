/**
 * The fabric keeps the kernel in step with the EC2 model. Model events only mark it dirty; a single
 * loop then reconciles every instance it knows (namespace, one veth per attached ENI) and the
 * router's delivery routes against the model's current views. Reconciling instead of replaying
 * events makes it indifferent to event order and bursts (an address moved between two ENIs is one
 * pass), and tests wait for it with `idle()`.
 */
import { cleanupPrefix, deleteNetns, killProcessesIn, netnsWithPrefix } from './cleanup.js';
import { configurePrimaryLines, createEniLinkLines, type EniLink, isPrimaryEni } from './eni-links.js';
import type { AttachedEniView, FabricModel, InstanceView } from './model.js';
import {
  inetNetnsName,
  instanceEniLinkName,
  instanceNetnsName,
  routerEniLinkName,
  routerNetnsName,
  validatePrefix,
} from './names.js';
import {
  createNetns,
  setImdsHopLimits,
  setInternetAllowList,
  setUpInternetHost,
  setUpRouter,
} from './router.js';
import { asCidr, diffRoutes, type RouteTarget, routeBatch } from './routes.js';
import { readDeliveryRoutes } from './routes-kernel.js';
import { ipBatch, runCommand } from './shell.js';
import { setSysctls } from './sysctl.js';

export interface FabricOptions {
  prefix: string;
  model: FabricModel;
  /**
   * Sysctls set in every new instance namespace. Default: IPv4 forwarding on, as the EKS AMI
   * configures nodes (pods are routed through the node).
   */
  instanceSysctls?: Readonly<Record<string, string | number>>;
  /**
   * How long after EC2 accepts an attachment the ENI's link appears in the instance (default 0).
   * On EC2 the hot-plugged device shows up seconds later, and ipamd has to wait for it.
   */
  eniAttachDelayMs?: number;
  /** Told about each reconcile failure as it happens (idle() also reports them). */
  onError?: (err: Error) => void;
}

interface InstanceRecord {
  ns: string;
  /** eniId -> the veth pair created for it */
  links: Map<string, EniLink & { deviceIndex: number; networkCardIndex: number }>;
}

const DEFAULT_INSTANCE_SYSCTLS = { 'net.ipv4.ip_forward': 1 };

export class Fabric {
  readonly prefix: string;
  readonly routerNs: string;
  readonly inetNs: string;

  private readonly model: FabricModel;
  private readonly instanceSysctls: Readonly<Record<string, string | number>>;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly eniAttachDelayMs: number;
  /** eniId -> timer that re-runs the loop when its delayed attachment is due. */
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly watched = new Set<string>();
  private readonly instances = new Map<string, InstanceRecord>();
  private routes = new Map<string, RouteTarget>();
  private allowList = '';
  /** The IMDS hop-limit rules last applied, as a comparable key. */
  private imdsHops = '';
  private linkCounter = 0;
  private dirty = false;
  private running: Promise<void> | undefined;
  private errors: Error[] = [];
  private unsubscribe: (() => void) | undefined;
  private destroyed = false;

  private constructor(opts: FabricOptions) {
    this.prefix = validatePrefix(opts.prefix);
    this.routerNs = routerNetnsName(this.prefix);
    this.inetNs = inetNetnsName(this.prefix);
    this.model = opts.model;
    this.instanceSysctls = opts.instanceSysctls ?? DEFAULT_INSTANCE_SYSCTLS;
    this.onError = opts.onError;
    this.eniAttachDelayMs = opts.eniAttachDelayMs ?? 0;
    if (!(this.eniAttachDelayMs >= 0)) {
      throw new Error(`eniAttachDelayMs must be a number >= 0, got ${opts.eniAttachDelayMs}`);
    }
  }

  /** Creates the router and internet namespaces and starts following the model. */
  static async create(opts: FabricOptions): Promise<Fabric> {
    const fabric = new Fabric(opts);
    const existing = await netnsWithPrefix(fabric.prefix);
    if (existing.length > 0) {
      // Refuse before creating anything, so the clean-up on failure below never touches them.
      throw new Error(
        `prefix ${fabric.prefix} is in use (${existing.join(', ')}); pick another or run local-vpc cleanup --prefix ${fabric.prefix}`,
      );
    }
    const created: string[] = [];
    try {
      await setUpRouter(fabric.routerNs, created);
      await setUpInternetHost(fabric.routerNs, fabric.inetNs, created);
    } catch (err) {
      // Only what this call created: a racing run with the same prefix keeps its namespaces.
      await deleteNetns(created).catch(() => {});
      throw new Error(`local VPC fabric set-up failed: ${(err as Error).message}`, { cause: err });
    }
    fabric.unsubscribe = opts.model.subscribe((event, instanceId) => {
      // An attachment to an instance we have not seen yet (launched through the model directly)
      // gives it a namespace too.
      if (event === 'eni-attached' && instanceId !== undefined) fabric.watched.add(instanceId);
      fabric.kick();
    });
    return fabric;
  }

  /** Gives the instance its namespace and links (if it has none yet) and returns the namespace. */
  async addInstance(instanceId: string): Promise<string> {
    this.watched.add(instanceId);
    this.kick();
    await this.idle();
    const record = this.instances.get(instanceId);
    if (!record) throw new Error(`instance ${instanceId} is not running in the EC2 model; no namespace made`);
    return record.ns;
  }

  /** The namespace of a running instance, if the fabric has made it. */
  instanceNetns(instanceId: string): string | undefined {
    return this.instances.get(instanceId)?.ns;
  }

  /** Every instance namespace the fabric currently holds. */
  instanceNamespaces(): Map<string, string> {
    return new Map([...this.instances].map(([id, r]) => [id, r.ns]));
  }

  /** Router-side link name of an attached ENI (for tests that look at the router). */
  routerLinkOf(eniId: string): string | undefined {
    for (const r of this.instances.values()) {
      const link = r.links.get(eniId);
      if (link) return link.routerLink;
    }
    return undefined;
  }

  /** The router's delivery routes as the fabric last set them. */
  routeTable(): ReadonlyMap<string, RouteTarget> {
    return new Map(this.routes);
  }

  /**
   * Resolves once every model change seen so far is in the kernel (ENIs held back by
   * eniAttachDelayMs excepted: they appear when due). Throws (once) the errors the
   * reconcile loop hit since the last call, so a test does not pass over a broken fabric.
   */
  async idle(): Promise<void> {
    while (this.running) await this.running;
    if (this.errors.length > 0) {
      const errors = this.errors;
      this.errors = [];
      throw new Error(`local VPC fabric: ${errors.map((e) => e.message).join('\n')}`);
    }
  }

  /** Stops following the model and removes every namespace of the prefix. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.unsubscribe?.();
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
    while (this.running) await this.running.catch(() => {});
    await cleanupPrefix(this.prefix);
    this.instances.clear();
    this.routes.clear();
  }

  private kick(): void {
    if (this.destroyed) return;
    this.dirty = true;
    if (this.running) return;
    this.running = this.loop().finally(() => {
      this.running = undefined;
      if (this.dirty) this.kick();
    });
  }

  private async loop(): Promise<void> {
    while (this.dirty && !this.destroyed) {
      this.dirty = false;
      try {
        await this.reconcile();
      } catch (err) {
        this.errors.push(err as Error);
        this.onError?.(err as Error);
      }
    }
  }

  private async reconcile(): Promise<void> {
    const live: InstanceView[] = [];
    for (const id of [...this.watched]) {
      const view = this.model.instance(id);
      if (!view?.running) {
        this.watched.delete(id);
        await this.removeInstance(id);
      } else {
        live.push(view);
      }
    }
    for (const view of live) await this.reconcileInstance(view);
    await this.reconcileRoutes(live);
    await this.reconcileAllowList(live);
    await this.reconcileImdsHops(live);
  }

  private async ensureNamespace(instanceId: string): Promise<InstanceRecord> {
    const existing = this.instances.get(instanceId);
    if (existing) return existing;
    const taken = new Set([...this.instances.values()].map((r) => r.ns));
    const ns = instanceNetnsName(this.prefix, instanceId, taken);
    try {
      await createNetns(ns);
      await setSysctls(ns, this.instanceSysctls);
    } catch (err) {
      await deleteNetns([ns]).catch(() => {}); // so the next pass starts clean
      throw err;
    }
    const record: InstanceRecord = { ns, links: new Map() };
    this.instances.set(instanceId, record);
    return record;
  }

  private async reconcileInstance(view: InstanceView): Promise<void> {
    const record = await this.ensureNamespace(view.instanceId);
    const desired = new Map(view.enis.map((e) => [e.eniId, e]));
    const routerLines: string[] = [];
    const instanceLines: string[] = [];
    for (const [eniId, link] of record.links) {
      const want = desired.get(eniId);
      const same =
        want &&
        want.mac === link.mac &&
        want.deviceIndex === link.deviceIndex &&
        want.networkCardIndex === link.networkCardIndex;
      if (!same) {
        // Deleting one end of a veth deletes both, and the kernel drops routes through it.
        routerLines.push(`link del ${link.routerLink}`);
        record.links.delete(eniId);
        this.forgetRoutesVia(link.routerLink);
      }
    }
    const created: AttachedEniView[] = [];
    for (const eni of view.enis) {
      if (record.links.has(eni.eniId)) continue;
      if (!eni.primary && this.deferAttachment(eni)) continue;
      const routerLink = routerEniLinkName(this.linkCounter++);
      routerLines.push(...createEniLinkLines(eni, routerLink, record.ns));
      record.links.set(eni.eniId, {
        eniId: eni.eniId,
        routerLink,
        instanceLink: instanceEniLinkName(eni.deviceIndex, eni.networkCardIndex),
        mac: eni.mac,
        deviceIndex: eni.deviceIndex,
        networkCardIndex: eni.networkCardIndex,
      });
      created.push(eni);
      if (isPrimaryEni(eni)) instanceLines.push(...configurePrimaryLines(eni));
    }
    if (routerLines.length === 0) return;
    try {
      // force: a pair that is already gone must not keep the new ones from being made.
      await ipBatch(this.routerNs, routerLines, { force: true });
      await ipBatch(record.ns, instanceLines);
    } catch (err) {
      // Undo the half-made pairs and forget them, so the next pass recreates them from scratch.
      const undo = created.map((eni) => `link del ${record.links.get(eni.eniId)!.routerLink}`);
      if (undo.length > 0)
        await runCommand('ip', ['-n', this.routerNs, '-force', '-batch', '-'], `${undo.join('\n')}\n`);
      for (const eni of created) record.links.delete(eni.eniId);
      throw new Error(`instance ${view.instanceId}: ${(err as Error).message}`, { cause: err });
    }
  }

  private async reconcileRoutes(live: readonly InstanceView[]): Promise<void> {
    const desired = new Map<string, RouteTarget>();
    for (const view of live) {
      const record = this.instances.get(view.instanceId);
      if (!record) continue;
      for (const eni of view.enis) {
        const link = record.links.get(eni.eniId);
        if (!link) continue;
        const dev = link.routerLink;
        for (const ip of eni.privateIps) {
          desired.set(asCidr(ip), ip === eni.primaryIp ? { dev } : { dev, via: eni.primaryIp });
        }
        for (const prefix of eni.prefixes) desired.set(asCidr(prefix), { dev, via: eni.primaryIp });
      }
    }
    const lines = routeBatch(diffRoutes(this.routes, desired));
    if (lines.length === 0) return;
    try {
      await ipBatch(this.routerNs, lines);
      this.routes = desired;
    } catch (err) {
      // Part of the batch may have applied: start the next pass from what the kernel really has.
      this.routes = await readDeliveryRoutes(this.routerNs);
      throw err;
    }
  }

  private async reconcileAllowList(live: readonly InstanceView[]): Promise<void> {
    const primaries = live.flatMap((v) => v.enis.filter(isPrimaryEni).map((e) => e.primaryIp)).sort();
    const key = primaries.join(',');
    if (key === this.allowList) return;
    await setInternetAllowList(this.inetNs, primaries);
    this.allowList = key;
  }

  private async reconcileImdsHops(live: readonly InstanceView[]): Promise<void> {
    const hops = new Map<string, number>();
    for (const view of live) {
      for (const link of this.instances.get(view.instanceId)?.links.values() ?? []) {
        hops.set(link.routerLink, view.imdsHopLimit);
      }
    }
    const key = JSON.stringify([...hops].sort());
    if (key === this.imdsHops) return;
    await setImdsHopLimits(this.routerNs, hops);
    this.imdsHops = key;
  }

  /** True (and a wake-up scheduled) while a hot-plugged ENI is not due to appear yet. */
  private deferAttachment(eni: AttachedEniView): boolean {
    const wait = eni.attachedAt + this.eniAttachDelayMs - Date.now();
    if (wait <= 0) return false;
    if (!this.pending.has(eni.eniId)) {
      const timer = setTimeout(() => {
        this.pending.delete(eni.eniId);
        this.kick();
      }, wait);
      this.pending.set(eni.eniId, timer);
    }
    return true;
  }

  private forgetRoutesVia(routerLink: string): void {
    for (const [dst, target] of this.routes) if (target.dev === routerLink) this.routes.delete(dst);
  }

  private async removeInstance(instanceId: string): Promise<void> {
    const record = this.instances.get(instanceId);
    if (!record) return;
    for (const link of record.links.values()) this.forgetRoutesVia(link.routerLink);
    killProcessesIn([record.ns]);
    await deleteNetns([record.ns]);
    this.instances.delete(instanceId);
  }
}
