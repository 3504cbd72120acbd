/**
 * The checkpoint's assignments while ipamd starts, before the datastore exists (IMDS, EC2 and the host
 * may take a while, or be failing). Releases are served from here by the datastore's rule (only the
 * attachment that holds an address releases it, and the address cools down), so a runtime's DEL of a
 * sandbox whose ADD failed (no prevResult: only ipamd can answer it) never waits for EC2.
 * The replay then starts from what is left.
 */
import type { CheckpointAllocation, CheckpointData } from '../checkpoint.js';
import { type AttachmentId, keyOf } from './datastore.js';

export class SavedAssignments {
  private allocations: CheckpointAllocation[];
  private cooldowns: { address: string; until: number }[];

  constructor(
    data: CheckpointData | null,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.allocations = [...(data?.allocations ?? [])];
    this.cooldowns = [...(data?.cooldowns ?? [])];
  }

  /** What to persist and, once the datastore is built, to replay. */
  snapshot(): CheckpointData {
    const now = this.now();
    this.cooldowns = this.cooldowns.filter((c) => c.until > now);
    return { version: 1, allocations: [...this.allocations], cooldowns: [...this.cooldowns] };
  }

  /** Releases the key's entry, its address into cooldown; null when the key holds nothing. */
  release(key: AttachmentId): CheckpointAllocation | null {
    const k = keyOf(key);
    const hit = this.allocations.find((a) => keyOf(a) === k);
    if (!hit) return null;
    this.drop([hit]);
    return hit;
  }

  /** The entry holding `address`, or null. */
  holderOf(address: string): CheckpointAllocation | null {
    return this.allocations.find((a) => a.address === address) ?? null;
  }

  /** How many entries `network` has. */
  countOf(network: string): number {
    return this.allocations.filter((a) => a.network === network).length;
  }

  /** Releases every entry of `network` whose (containerId, ifName) is not in `valid`. */
  gc(network: string, valid: { containerId: string; ifName: string }[]): CheckpointAllocation[] {
    const keep = new Set(valid.map((v) => keyOf({ network, ...v })));
    const gone = this.allocations.filter((a) => a.network === network && !keep.has(keyOf(a)));
    this.drop(gone);
    return gone;
  }

  /** Puts back entries whose release could not be persisted. */
  undo(entries: CheckpointAllocation[]): void {
    for (const e of entries) {
      if (this.allocations.some((a) => a.address === e.address || keyOf(a) === keyOf(e))) continue;
      this.allocations.push(e);
      this.cooldowns = this.cooldowns.filter((c) => c.address !== e.address);
    }
  }

  private drop(entries: CheckpointAllocation[]): void {
    if (entries.length === 0) return;
    const gone = new Set(entries);
    const addresses = new Set(entries.map((e) => e.address));
    const until = this.now() + this.cooldownMs;
    this.allocations = this.allocations.filter((a) => !gone.has(a));
    this.cooldowns = [
      ...this.cooldowns.filter((c) => !addresses.has(c.address)),
      ...[...addresses].map((address) => ({ address, until })),
    ];
  }
}
