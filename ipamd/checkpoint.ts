/**
 * The checkpoint: which pod attachment holds which address, persisted before ipamd acknowledges an
 * assignment or release, so a restart (or kill -9) never loses or double-assigns an address.
 * Versioned JSON, mode 0600, written atomically (lib/fs/atomic.ts).
 * Concurrent requests share writes (group commit): every caller's change is in the write it awaits.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../lib/fs/atomic.js';
import type { Assignment } from './datastore/datastore.js';

export const CHECKPOINT_VERSION = 1;

export interface CheckpointAllocation extends Assignment {
  address: string;
  eniId: string;
}

export interface CheckpointData {
  version: number;
  allocations: CheckpointAllocation[];
  /** Released addresses still cooling down (epoch ms), so a restart does not hand them out early. */
  cooldowns: { address: string; until: number }[];
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

function str(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 1024;
}

function unreadable(path: string, why: string): CheckpointError {
  return new CheckpointError(
    `checkpoint ${path} is unreadable: ${why}. Restore it from a backup, or remove it only after every pod on this node is deleted`,
  );
}

function validate(path: string, obj: unknown): CheckpointData {
  const bad = (why: string) => unreadable(path, why);
  if (typeof obj !== 'object' || obj === null) throw bad('not a JSON object');
  const o = obj as Record<string, unknown>;
  if (typeof o.version !== 'number') throw bad('no version');
  if (o.version > CHECKPOINT_VERSION) {
    throw bad(
      `version ${o.version} was written by a newer ipamd (this one reads up to ${CHECKPOINT_VERSION})`,
    );
  }
  if (!Array.isArray(o.allocations)) throw bad('"allocations" is not an array');
  const allocations = o.allocations.map((a, i) => {
    const x = a as Record<string, unknown>;
    for (const f of ['network', 'containerId', 'ifName', 'address', 'eniId', 'assignedAt']) {
      if (!str(x?.[f])) throw bad(`allocations[${i}].${f} is missing or not a string`);
    }
    return x as unknown as CheckpointAllocation;
  });
  const cooldowns = Array.isArray(o.cooldowns)
    ? o.cooldowns.filter(
        (c): c is { address: string; until: number } =>
          str((c as { address?: unknown })?.address) && typeof (c as { until?: unknown }).until === 'number',
      )
    : [];
  return { version: CHECKPOINT_VERSION, allocations, cooldowns };
}

export class Checkpoint {
  private pending: Promise<void> | null = null;
  private tail: Promise<void> = Promise.resolve();
  private writes = 0;

  constructor(
    readonly path: string,
    private readonly snapshot: () => CheckpointData,
  ) {}

  /** Reads the checkpoint; null when there is none yet (first start). */
  async load(): Promise<CheckpointData | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CheckpointError(`cannot read checkpoint ${this.path}: ${(err as Error).message}`);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw unreadable(this.path, `invalid JSON (${(err as Error).message})`);
    }
    return validate(this.path, obj);
  }

  /**
   * Persists the current state. Resolves once a write that started after this call has reached the
   * disk; callers that arrive while a write is in flight share the next one.
   */
  persist(): Promise<void> {
    if (this.pending) return this.pending;
    const run = this.tail
      .catch(() => undefined)
      .then(() => {
        this.pending = null;
        return this.writeNow(this.snapshot());
      });
    this.pending = run;
    this.tail = run;
    return run;
  }

  /** Number of completed writes (for tests and metrics). */
  get writeCount(): number {
    return this.writes;
  }

  private async writeNow(data: CheckpointData): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o755 });
    await writeFileAtomic(this.path, `${JSON.stringify(data)}\n`, 0o600);
    this.writes++;
  }
}
