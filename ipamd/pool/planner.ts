/**
 * The deciding half of the pool ("prepare"): from a snapshot of the pool, the targets and the limits,
 * choose the one next action (grow an ENI, create the ENIs still needed, release surplus, delete a free
 * ENI, or nothing) with the reason for it. Pure: no I/O, no clock; table-tested.
 */

export type AddressUnit = 'ip' | 'prefix';

export interface PlannerEni {
  id: string;
  deviceNumber: number;
  isPrimary: boolean;
  /** false for the primary ENI under custom networking. */
  forPods: boolean;
  /** Secondary IPs + prefixes held: what EC2's per-ENI limit counts. */
  slotsUsed: number;
  total: number;
  assigned: number;
  cooling: number;
  ready: number;
  /** Free, out-of-cooldown secondary IPs / whole prefixes: what may be released. */
  freeIps: string[];
  freePrefixes: string[];
  /** Its subnet is backing off after running out of addresses. */
  subnetBlocked: boolean;
  /** EC2 does not confirm the ENI yet (consistency window): neither grown, shrunk nor deleted. */
  unconfirmed?: boolean;
  /** EC2 answered PrivateIpAddressLimitExceeded for it lately: full as far as EC2 is concerned. */
  ec2Full?: boolean;
}

export interface PoolTargets {
  warmEni: number;
  warmIp: number;
  minIp: number;
  warmPrefix: number;
}

export interface PoolLimits {
  /** ENIs the instance may have attached (type limit, MAX_ENI), unmanaged ones included. */
  maxEnis: number;
  /** Secondary IPs (or prefixes) per ENI: the type's addresses per ENI minus the primary. */
  slotsPerEni: number;
  maxPods: number;
}

export interface PlannerInput {
  mode: AddressUnit;
  targets: PoolTargets;
  limits: PoolLimits;
  /** Managed ENIs (the primary one included). */
  enis: PlannerEni[];
  /** Device numbers in use by every attached ENI, unmanaged ones included. */
  usedDeviceNumbers: number[];
  /** Why no ENI can be created right now (provisioning disabled, every subnet backing off), or null. */
  createBlockedReason: string | null;
  now: number;
  lastShrinkAt: number;
  shrinkIntervalMs: number;
}

export type PoolAction =
  | { kind: 'none'; reason: string }
  /**
   * The pool is short but cannot grow; `permanent` when only a pod deletion can help, `retrySoon`
   * when it will grow again without anyone acting (EC2's view catching up).
   */
  | { kind: 'blocked'; reason: string; permanent: boolean; retrySoon?: boolean }
  | { kind: 'assign'; eniId: string; unit: AddressUnit; count: number; reason: string }
  /** Every ENI still needed, each at its own free device number, created concurrently. */
  | { kind: 'create-enis'; unit: AddressUnit; enis: NewEni[]; reason: string }
  | { kind: 'release'; eniId: string; unit: AddressUnit; items: string[]; reason: string }
  | { kind: 'delete-eni'; eniId: string; reason: string };

/** One ENI to create: the device number it attaches at and the addresses (or prefixes) it starts with. */
export interface NewEni {
  deviceNumber: number;
  count: number;
}

export interface PoolTotals {
  total: number;
  assigned: number;
  cooling: number;
  ready: number;
}

export function totals(enis: PlannerEni[]): PoolTotals {
  const t = { total: 0, assigned: 0, cooling: 0, ready: 0 };
  for (const e of enis) {
    if (!e.forPods) continue;
    t.total += e.total;
    t.assigned += e.assigned;
    t.cooling += e.cooling;
    t.ready += e.ready;
  }
  return t;
}

function ipTargets(t: PoolTargets): boolean {
  return t.warmIp > 0 || t.minIp > 0;
}

/** Addresses the pool is short of its target (0 when it is not). */
export function shortfall(input: PlannerInput): { short: number; why: string } {
  const t = totals(input.enis);
  const { targets, limits, mode } = input;
  if (ipTargets(targets)) {
    const warm = targets.warmIp - t.ready;
    const min = targets.minIp - t.total;
    const short = Math.max(warm, min, 0);
    const why =
      min >= warm
        ? `total ${t.total} below MINIMUM_IP_TARGET ${targets.minIp}`
        : `ready ${t.ready} below WARM_IP_TARGET ${targets.warmIp}`;
    return { short, why };
  }
  if (mode === 'prefix') {
    const want = targets.warmPrefix * 16;
    return {
      short: Math.max(want - t.ready, 0),
      why: `ready ${t.ready} below WARM_PREFIX_TARGET ${targets.warmPrefix} (${want} addresses)`,
    };
  }
  const want = targets.warmEni * limits.slotsPerEni;
  return {
    short: Math.max(want - t.ready, 0),
    why: `ready ${t.ready} below WARM_ENI_TARGET ${targets.warmEni} (${want} addresses)`,
  };
}

/** Free addresses above target (0 when none may go). */
export function surplus(input: PlannerInput): number {
  const t = totals(input.enis);
  const { targets, limits, mode } = input;
  if (ipTargets(targets)) return Math.max(Math.min(t.ready - targets.warmIp, t.total - targets.minIp), 0);
  if (mode === 'prefix') return Math.max(t.ready - targets.warmPrefix * 16, 0);
  return Math.max(t.ready - targets.warmEni * limits.slotsPerEni, 0);
}

/** The `n` lowest device numbers (from 1; 0 is the primary ENI) no attached ENI uses. */
export function freeDeviceNumbers(used: number[], n: number): number[] {
  const taken = new Set(used);
  const out: number[] = [];
  for (let d = 1; out.length < n; d++) if (!taken.has(d)) out.push(d);
  return out;
}

/**
 * Splits the slots still wanted over new ENIs: as many ENIs as the shortfall needs (never more than
 * `freeEnis`), each filled up to the per-ENI limit. In ENI mode the count of ENIs follows the
 * shortfall but each ENI is filled whole (bounded by max pods), as the reference does.
 */
function newEnis(
  needSlots: number,
  roomSlots: number,
  wholeEnis: boolean,
  slotsPerEni: number,
  freeEnis: number,
): number[] {
  const wanted = Math.min(freeEnis, Math.ceil(needSlots / slotsPerEni));
  const counts: number[] = [];
  let need = needSlots;
  let room = roomSlots;
  for (let i = 0; i < wanted && need > 0 && room > 0; i++) {
    const count = Math.min(slotsPerEni, room, wholeEnis ? slotsPerEni : need);
    counts.push(count);
    need -= count;
    room -= count;
  }
  return counts;
}

export function plan(input: PlannerInput): PoolAction {
  const { mode, limits } = input;
  const perSlot = mode === 'prefix' ? 16 : 1;
  const t = totals(input.enis);
  const { short, why } = shortfall(input);

  if (short > 0) {
    const room = limits.maxPods - t.total;
    if (room <= 0) {
      return { kind: 'blocked', reason: `node at max pods (${limits.maxPods})`, permanent: true };
    }
    // Whole ENIs in ENI mode; just enough slots otherwise. Never past max pods (one partial prefix allowed).
    const wholeEnis = !ipTargets(input.targets) && mode === 'ip';
    const needSlots = Math.ceil(Math.min(short, room) / perSlot);
    const roomSlots = Math.ceil(room / perSlot);
    const hasRoom = (e: PlannerEni) => e.slotsUsed < limits.slotsPerEni && !e.ec2Full;
    const growable = input.enis
      .filter((e) => e.forPods && !e.subnetBlocked && !e.unconfirmed && hasRoom(e))
      .sort((a, b) => a.deviceNumber - b.deviceNumber);
    const target = growable[0];
    if (target) {
      const free = limits.slotsPerEni - target.slotsUsed;
      const count = Math.min(free, wholeEnis ? roomSlots : needSlots);
      return {
        kind: 'assign',
        eniId: target.id,
        unit: mode,
        count,
        reason: `${why}: adding ${count} ${mode === 'ip' ? 'IP(s)' : 'prefix(es)'} to ${target.id}`,
      };
    }
    const attached = input.usedDeviceNumbers.length;
    // An ENI EC2 does not show yet is most likely one ipamd just created: wait for it, not a second one.
    const waiting = input.enis.filter((e) => e.forPods && e.unconfirmed).map((e) => e.id);
    const awaitingEc2: PoolAction = {
      kind: 'blocked',
      reason: `waiting for EC2 to confirm ENI(s) ${waiting.join(', ')} (attached per IMDS, not shown by DescribeNetworkInterfaces yet)`,
      permanent: false,
      retrySoon: true,
    };
    if (attached >= limits.maxEnis) {
      if (waiting.length > 0) return awaitingEc2;
      const withRoom = input.enis.filter((e) => e.forPods && hasRoom(e));
      if (withRoom.length === 0 && input.enis.every((e) => !e.forPods || !e.ec2Full)) {
        return {
          kind: 'blocked',
          reason: `ENI limit reached: ${attached} of ${limits.maxEnis} ENIs attached and full (${limits.slotsPerEni} ${mode === 'ip' ? 'IPs' : 'prefixes'} each)`,
          permanent: true,
        };
      }
      const why = [
        withRoom.some((e) => e.subnetBlocked) ? 'the ENIs with room are in subnets that are backing off' : '',
        input.enis.some((e) => e.ec2Full)
          ? 'EC2 reports ENIs full (PrivateIpAddressLimitExceeded) where ipamd saw room; reconciling with EC2'
          : '',
      ].filter(Boolean);
      return {
        kind: 'blocked',
        reason: `ENI limit reached (${limits.maxEnis}): ${why.join('; ')}`,
        permanent: false,
        retrySoon: !withRoom.some((e) => e.subnetBlocked),
      };
    }
    if (input.createBlockedReason !== null) {
      return { kind: 'blocked', reason: input.createBlockedReason, permanent: false };
    }
    if (waiting.length > 0) return awaitingEc2;
    const counts = newEnis(needSlots, roomSlots, wholeEnis, limits.slotsPerEni, limits.maxEnis - attached);
    const devices = freeDeviceNumbers(input.usedDeviceNumbers, counts.length);
    const enis = counts.map((count, i) => ({ deviceNumber: devices[i]!, count }));
    const unitName = mode === 'ip' ? 'IP(s)' : 'prefix(es)';
    const what = enis.map((e) => `device ${e.deviceNumber} with ${e.count} ${unitName}`).join(', ');
    return {
      kind: 'create-enis',
      unit: mode,
      enis,
      reason: `${why}: existing ENIs are full, creating ${enis.length} ENI(s) at once: ${what}`,
    };
  }

  if (input.now - input.lastShrinkAt < input.shrinkIntervalMs) {
    return { kind: 'none', reason: 'pool at target' };
  }
  const over = surplus(input);
  if (over <= 0) return { kind: 'none', reason: 'pool at target' };

  // A whole free ENI goes first: one detach frees an ENI slot and all its addresses.
  const freeEni = input.enis
    .filter(
      (e) =>
        !e.isPrimary && e.forPods && !e.unconfirmed && e.assigned === 0 && e.cooling === 0 && e.total <= over,
    )
    .sort((a, b) => b.deviceNumber - a.deviceNumber)[0];
  if (freeEni) {
    return {
      kind: 'delete-eni',
      eniId: freeEni.id,
      reason: `${over} free address(es) above target: deleting unused ENI ${freeEni.id} (${freeEni.total} addresses)`,
    };
  }
  // In ENI mode the reference keeps addresses per whole ENI; only IP/prefix targets trim addresses.
  if (!ipTargets(input.targets) && mode === 'ip') return { kind: 'none', reason: 'pool at target' };

  const byEmptiness = input.enis
    .filter((e) => e.forPods && !e.unconfirmed)
    .sort((a, b) => a.assigned - b.assigned || b.deviceNumber - a.deviceNumber);
  for (const e of byEmptiness) {
    if (mode === 'prefix') {
      const n = Math.min(Math.floor(over / 16), e.freePrefixes.length);
      if (n <= 0) continue;
      const items = e.freePrefixes.slice(0, n);
      return {
        kind: 'release',
        eniId: e.id,
        unit: 'prefix',
        items,
        reason: `${over} free address(es) above target: releasing ${n} prefix(es) from ${e.id}`,
      };
    }
    const n = Math.min(over, e.freeIps.length);
    if (n <= 0) continue;
    return {
      kind: 'release',
      eniId: e.id,
      unit: 'ip',
      items: e.freeIps.slice(0, n),
      reason: `${over} free address(es) above target: releasing ${n} IP(s) from ${e.id}`,
    };
  }
  return { kind: 'none', reason: 'surplus addresses are assigned or cooling down' };
}
