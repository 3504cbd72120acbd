/**
 * In-memory state of the node's pool: the ENIs ipamd manages, the addresses each one holds (secondary IPs,
 * or the 16 addresses of each /28 prefix) and which pod attachment holds which address.
 * Pure bookkeeping: no I/O. Persisting (checkpoint) and EC2 calls are the callers' business.
 */
import { expandPrefix } from './ipv4.js';

export interface AttachmentId {
  network: string;
  containerId: string;
  ifName: string;
}

export interface Assignment extends AttachmentId {
  podNamespace?: string;
  podName?: string;
  /** The pod's network namespace path, to drop assignments whose pod is gone after a restart. */
  netns?: string;
  /**
   * MAC of the host end of the pod's veth, chosen by ipamd at assignment: the proof DEL and GC need
   * that a veth found on the host is this attachment's and not another pod's with the same name.
   */
  hostVethMac?: string;
  assignedAt: string;
}

export interface EniInfo {
  id: string;
  mac: string;
  deviceNumber: number;
  subnetId: string;
  subnetCidr: string;
  primaryIp: string;
  attachmentId: string | null;
  /** Device 0: never detached or deleted by ipamd. */
  isPrimary: boolean;
  /** false for the primary ENI under custom networking: its addresses are not for pods. */
  forPods: boolean;
}

export interface EniRecord extends EniInfo {
  secondaryIps: Set<string>;
  prefixes: Set<string>;
  /**
   * True while EC2 does not confirm the ENI as attached to this node (IMDS lists it but Describe does
   * not show it yet, or it vanished from both and may come back). Its assignments stay held; its free
   * addresses are not handed out and the pool neither grows nor shrinks it.
   */
  unconfirmed: boolean;
}

interface Slot {
  address: string;
  eniId: string;
  /** The /28 the address comes from, null for a secondary IP. */
  prefix: string | null;
  assignment: Assignment | null;
  /** Epoch ms until which a released address is not handed out again. */
  cooldownUntil: number;
  /**
   * Held for its pod although neither EC2 nor IMDS shows the address on the ENI (any more, or yet):
   * the release gives it back to nobody, it leaves the pool instead.
   */
  unbacked: boolean;
}

export interface PoolStats {
  total: number;
  assigned: number;
  /** Free but still in cooldown. */
  cooling: number;
  /** Free and ready to hand out. */
  ready: number;
}

export interface EniStats extends PoolStats {
  eni: EniRecord;
  /** Secondary IPs or prefixes in use as EC2 slots (what the per-ENI limit counts). */
  slotsUsed: number;
}

export interface AssignOutcome {
  address: string;
  eni: EniRecord;
  /** false when the key already held this address (idempotent repeat). */
  fresh: boolean;
}

export interface ReleaseOutcome {
  address: string;
  eni: EniRecord;
  assignment: Assignment;
}

export function keyOf(k: AttachmentId): string {
  return `${k.network}\u0000${k.containerId}\u0000${k.ifName}`;
}

export class Datastore {
  private readonly enis = new Map<string, EniRecord>();
  private readonly slots = new Map<string, Slot>();
  private readonly byKey = new Map<string, string>();
  /** Cooldowns of addresses that have no slot now (removed, or not seen yet): applied if they return. */
  private readonly lingering = new Map<string, number>();

  constructor(
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Adds an ENI; `unconfirmed` when only IMDS vouches for it so far (see EniRecord.unconfirmed). */
  addEni(info: EniInfo, opts: { unconfirmed?: boolean } = {}): EniRecord {
    const existing = this.enis.get(info.id);
    if (existing) return existing;
    const rec: EniRecord = {
      ...info,
      secondaryIps: new Set(),
      prefixes: new Set(),
      unconfirmed: opts.unconfirmed ?? false,
    };
    this.enis.set(info.id, rec);
    return rec;
  }

  /** EC2 shows the ENI attached to this node: its free addresses may be handed out again. */
  confirmEni(
    id: string,
    facts: Partial<Pick<EniInfo, 'attachmentId' | 'primaryIp' | 'subnetId'>> = {},
  ): void {
    const eni = this.mustEni(id);
    Object.assign(eni, facts, { unconfirmed: false });
  }

  /** EC2 does not confirm the ENI right now: hand out none of its free addresses until it does. */
  suspendEni(id: string): void {
    this.mustEni(id).unconfirmed = true;
  }

  getEni(id: string): EniRecord | undefined {
    return this.enis.get(id);
  }

  allEnis(): EniRecord[] {
    return [...this.enis.values()].sort((a, b) => a.deviceNumber - b.deviceNumber);
  }

  /** Adds secondary IPs EC2 gave the ENI. Addresses already known are ignored. */
  addIps(eniId: string, ips: string[]): void {
    const eni = this.mustEni(eniId);
    for (const ip of ips) {
      if (ip === eni.primaryIp || eni.secondaryIps.has(ip)) continue;
      eni.secondaryIps.add(ip);
      if (eni.forPods) this.addSlot(ip, eniId, null);
    }
  }

  addPrefixes(eniId: string, prefixes: string[]): void {
    const eni = this.mustEni(eniId);
    for (const prefix of prefixes) {
      if (eni.prefixes.has(prefix)) continue;
      eni.prefixes.add(prefix);
      if (!eni.forPods) continue;
      for (const ip of expandPrefix(prefix)) if (ip !== eni.primaryIp) this.addSlot(ip, eniId, prefix);
    }
  }

  private addSlot(address: string, eniId: string, prefix: string | null): void {
    const existing = this.slots.get(address);
    if (existing) {
      // A pod's address held without EC2's backing is backed again (EC2 shows it after all).
      if (existing.unbacked && existing.eniId === eniId) {
        existing.unbacked = false;
        existing.prefix = prefix;
      }
      return;
    }
    const cooldownUntil = this.lingering.get(address) ?? 0;
    this.lingering.delete(address);
    this.slots.set(address, { address, eniId, prefix, assignment: null, cooldownUntil, unbacked: false });
  }

  /** Deletes a slot, remembering a running cooldown in case the address comes back. */
  private dropSlot(slot: Slot): void {
    this.slots.delete(slot.address);
    if (slot.cooldownUntil > this.now()) this.lingering.set(slot.address, slot.cooldownUntil);
  }

  private mustEni(id: string): EniRecord {
    const eni = this.enis.get(id);
    if (!eni) throw new Error(`unknown ENI ${id}`);
    return eni;
  }

  /**
   * Removes secondary IPs from an ENI. Assigned ones are kept (a pod uses them) and returned in
   * `kept`, so a caller never releases a pod's address.
   */
  removeIps(eniId: string, ips: string[]): { removed: string[]; kept: string[] } {
    const eni = this.mustEni(eniId);
    const removed: string[] = [];
    const kept: string[] = [];
    for (const ip of ips) {
      if (!eni.secondaryIps.has(ip)) continue;
      if (this.slots.get(ip)?.assignment) {
        kept.push(ip);
        continue;
      }
      eni.secondaryIps.delete(ip);
      const slot = this.slots.get(ip);
      if (slot) this.dropSlot(slot);
      removed.push(ip);
    }
    return { removed, kept };
  }

  /** Removes whole prefixes none of whose addresses are assigned; others are kept. */
  removePrefixes(eniId: string, prefixes: string[]): { removed: string[]; kept: string[] } {
    const eni = this.mustEni(eniId);
    const removed: string[] = [];
    const kept: string[] = [];
    for (const prefix of prefixes) {
      if (!eni.prefixes.has(prefix)) continue;
      const ips = expandPrefix(prefix);
      if (ips.some((ip) => this.slots.get(ip)?.assignment && this.slots.get(ip)?.prefix === prefix)) {
        kept.push(prefix);
        continue;
      }
      eni.prefixes.delete(prefix);
      for (const ip of ips) {
        const slot = this.slots.get(ip);
        if (slot?.prefix === prefix) this.dropSlot(slot);
      }
      removed.push(prefix);
    }
    return { removed, kept };
  }

  /**
   * EC2 and IMDS agree these secondary IPs / prefixes are no longer on the ENI: their free addresses
   * leave the pool; an address a pod holds stays held (unbacked) until that pod's own release, so no
   * other pod can ever get it. Returns the free addresses removed and the held ones.
   */
  forget(
    eniId: string,
    gone: { ips?: string[]; prefixes?: string[] },
  ): { removed: string[]; held: string[] } {
    const eni = this.mustEni(eniId);
    const removed: string[] = [];
    const held: string[] = [];
    const drop = (address: string, prefix: string | null) => {
      const slot = this.slots.get(address);
      if (!slot || slot.eniId !== eniId || slot.prefix !== prefix) return;
      if (slot.assignment) {
        slot.unbacked = true;
        held.push(address);
      } else {
        this.dropSlot(slot);
      }
    };
    for (const ip of gone.ips ?? []) {
      if (!eni.secondaryIps.delete(ip)) continue;
      drop(ip, null);
      if (!held.includes(ip)) removed.push(ip);
    }
    for (const prefix of gone.prefixes ?? []) {
      if (!eni.prefixes.delete(prefix)) continue;
      for (const ip of expandPrefix(prefix)) drop(ip, prefix);
      removed.push(prefix);
    }
    return { removed, held };
  }

  /**
   * Replays a checkpointed assignment whose address neither EC2 nor IMDS shows on its ENI (yet): the
   * pod keeps it, held unbacked. False when the ENI is unknown or the address is in use.
   */
  hold(eniId: string, address: string, assignment: Assignment): boolean {
    if (!this.enis.has(eniId) || this.slots.has(address) || this.byKey.has(keyOf(assignment))) return false;
    this.lingering.delete(address);
    this.slots.set(address, { address, eniId, prefix: null, assignment, cooldownUntil: 0, unbacked: true });
    this.byKey.set(keyOf(assignment), address);
    return true;
  }

  /** Forgets an ENI; refuses while any of its addresses is assigned. */
  removeEni(eniId: string): boolean {
    const eni = this.enis.get(eniId);
    if (!eni) return true;
    if (this.statsOf(eniId).assigned > 0) return false;
    for (const slot of [...this.slots.values()]) if (slot.eniId === eniId) this.dropSlot(slot);
    this.enis.delete(eniId);
    return true;
  }

  lookup(key: AttachmentId): { address: string; eni: EniRecord; assignment: Assignment } | null {
    const address = this.byKey.get(keyOf(key));
    if (address === undefined) return null;
    const slot = this.slots.get(address)!;
    return { address, eni: this.enis.get(slot.eniId)!, assignment: slot.assignment! };
  }

  /** The attachment holding `address`, or null when it is free or unknown. */
  holderOf(address: string): Assignment | null {
    return this.slots.get(address)?.assignment ?? null;
  }

  /**
   * Assigns a free address to the key, or returns the one it already has. Packs pods onto the busiest
   * ENI and prefix so whole ENIs and prefixes stay free for shrinking. Null when nothing is ready.
   */
  assign(
    meta: Omit<Assignment, 'assignedAt'> & { assignedAt?: string },
    address?: string,
  ): AssignOutcome | null {
    const existing = this.lookup(meta);
    if (existing) return { address: existing.address, eni: existing.eni, fresh: false };
    const slot = address !== undefined ? this.readySlot(address) : this.pickSlot();
    if (!slot) return null;
    slot.assignment = { ...meta, assignedAt: meta.assignedAt ?? new Date(this.now()).toISOString() };
    slot.cooldownUntil = 0;
    this.byKey.set(keyOf(meta), slot.address);
    return { address: slot.address, eni: this.enis.get(slot.eniId)!, fresh: true };
  }

  /** A named free slot (the checkpoint replay, a release undone): cooldown and confirmation do not matter. */
  private readySlot(address: string): Slot | null {
    const slot = this.slots.get(address);
    return slot && !slot.assignment && !slot.unbacked ? slot : null;
  }

  private pickSlot(): Slot | null {
    const now = this.now();
    const eniLoad = new Map<string, number>();
    const prefixLoad = new Map<string, number>();
    for (const s of this.slots.values()) {
      if (!s.assignment) continue;
      eniLoad.set(s.eniId, (eniLoad.get(s.eniId) ?? 0) + 1);
      if (s.prefix) prefixLoad.set(s.prefix, (prefixLoad.get(s.prefix) ?? 0) + 1);
    }
    let best: Slot | null = null;
    let bestScore = -1;
    for (const s of this.slots.values()) {
      if (s.assignment || s.cooldownUntil > now || s.unbacked || this.enis.get(s.eniId)?.unconfirmed)
        continue;
      const score = (eniLoad.get(s.eniId) ?? 0) * 1000 + (s.prefix ? (prefixLoad.get(s.prefix) ?? 0) : 0);
      if (score > bestScore) {
        best = s;
        bestScore = score;
      }
    }
    return best;
  }

  /** Undoes a fresh assignment that could not be persisted (no cooldown: it was never handed out). */
  unassign(key: AttachmentId): void {
    const address = this.byKey.get(keyOf(key));
    if (address === undefined) return;
    this.byKey.delete(keyOf(key));
    const slot = this.slots.get(address);
    if (!slot) return;
    slot.assignment = null;
    if (slot.unbacked) this.dropSlot(slot);
  }

  /** Releases the key's address into cooldown; null when the key holds nothing (already released). */
  release(key: AttachmentId): ReleaseOutcome | null {
    const address = this.byKey.get(keyOf(key));
    if (address === undefined) return null;
    this.byKey.delete(keyOf(key));
    const slot = this.slots.get(address)!;
    const assignment = slot.assignment!;
    slot.assignment = null;
    slot.cooldownUntil = this.now() + this.cooldownMs;
    // An address EC2 no longer backs goes back to nobody: it leaves the pool, still cooling.
    if (slot.unbacked) this.dropSlot(slot);
    return { address, eni: this.enis.get(slot.eniId)!, assignment };
  }

  /** Releases every assignment of `network` whose (containerId, ifName) is not in `valid`. */
  gc(network: string, valid: { containerId: string; ifName: string }[]): ReleaseOutcome[] {
    const keep = new Set(valid.map((v) => keyOf({ network, ...v })));
    const out: ReleaseOutcome[] = [];
    for (const slot of [...this.slots.values()]) {
      const a = slot.assignment;
      if (!a || a.network !== network || keep.has(keyOf(a))) continue;
      const r = this.release(a);
      if (r) out.push(r);
    }
    return out;
  }

  assignments(): { address: string; eniId: string; assignment: Assignment }[] {
    const out: { address: string; eniId: string; assignment: Assignment }[] = [];
    for (const s of this.slots.values()) {
      if (s.assignment) out.push({ address: s.address, eniId: s.eniId, assignment: s.assignment });
    }
    return out;
  }

  /** Addresses still cooling down (those without a slot now included), with the epoch ms they become ready. */
  cooldowns(): { address: string; until: number }[] {
    const now = this.now();
    const out: { address: string; until: number }[] = [];
    for (const s of this.slots.values()) {
      if (!s.assignment && s.cooldownUntil > now) out.push({ address: s.address, until: s.cooldownUntil });
    }
    for (const [address, until] of this.lingering) {
      if (until > now) out.push({ address, until });
      else this.lingering.delete(address);
    }
    return out;
  }

  /** Sets a free address's cooldown; for an address without a slot, applied when it appears. */
  setCooldown(address: string, until: number): void {
    const slot = this.slots.get(address);
    if (!slot) {
      if (until > this.now()) this.lingering.set(address, until);
    } else if (!slot.assignment) slot.cooldownUntil = until;
  }

  /** Starts a full IP_COOLDOWN_PERIOD for an address released without a DEL (its holder proven gone). */
  startCooldown(address: string): void {
    this.setCooldown(address, this.now() + this.cooldownMs);
  }

  /** The cooldown a release starts, in ms (IP_COOLDOWN_PERIOD). */
  get cooldownPeriodMs(): number {
    return this.cooldownMs;
  }

  hasAddress(address: string): boolean {
    return this.slots.has(address);
  }

  /** Earliest time a cooling address of the pool becomes ready, or null. */
  nextCooldownEnd(): number | null {
    const now = this.now();
    let min: number | null = null;
    for (const s of this.slots.values()) {
      if (s.assignment || s.cooldownUntil <= now || this.enis.get(s.eniId)?.unconfirmed) continue;
      if (min === null || s.cooldownUntil < min) min = s.cooldownUntil;
    }
    return min;
  }

  stats(): PoolStats {
    return this.count(() => true);
  }

  statsOf(eniId: string): PoolStats {
    return this.count((s) => s.eniId === eniId);
  }

  /** Per-prefix stats for one ENI: which prefixes are entirely free and out of cooldown. */
  freePrefixes(eniId: string): string[] {
    const eni = this.mustEni(eniId);
    if (eni.unconfirmed) return [];
    const now = this.now();
    return [...eni.prefixes].filter((p) =>
      expandPrefix(p).every((ip) => {
        const s = this.slots.get(ip);
        return !s || s.prefix !== p || (!s.assignment && s.cooldownUntil <= now);
      }),
    );
  }

  /** Secondary IPs of an ENI that are free and out of cooldown. */
  freeIps(eniId: string): string[] {
    const eni = this.mustEni(eniId);
    if (eni.unconfirmed) return [];
    const now = this.now();
    return [...eni.secondaryIps].filter((ip) => {
      const s = this.slots.get(ip);
      return !s || (!s.assignment && s.cooldownUntil <= now);
    });
  }

  /**
   * Assigned addresses per CIDR of the pool, as the reference's awscni_assigned_ip_per_cidr labels
   * them: each secondary IP as <ip>/32, each prefix as itself; free CIDRs count 0.
   */
  assignedPerCidr(): Map<string, number> {
    const out = new Map<string, number>();
    for (const eni of this.enis.values()) {
      if (!eni.forPods) continue;
      for (const ip of eni.secondaryIps) out.set(`${ip}/32`, 0);
      for (const prefix of eni.prefixes) out.set(prefix, 0);
    }
    for (const s of this.slots.values()) {
      if (!s.assignment) continue;
      const cidr = s.prefix ?? `${s.address}/32`;
      out.set(cidr, (out.get(cidr) ?? 0) + 1);
    }
    return out;
  }

  eniStats(): EniStats[] {
    return this.allEnis().map((eni) => ({
      eni,
      slotsUsed: eni.secondaryIps.size + eni.prefixes.size,
      ...this.statsOf(eni.id),
    }));
  }

  /** Counts slots; free ones of an unconfirmed ENI are not the pool's (yet), so they are not counted. */
  private count(pred: (s: Slot) => boolean): PoolStats {
    const now = this.now();
    let total = 0;
    let assigned = 0;
    let cooling = 0;
    for (const s of this.slots.values()) {
      if (!pred(s)) continue;
      if (!s.assignment && this.enis.get(s.eniId)?.unconfirmed) continue;
      total++;
      if (s.assignment) assigned++;
      else if (s.cooldownUntil > now) cooling++;
    }
    return { total, assigned, cooling, ready: total - assigned - cooling };
  }
}
