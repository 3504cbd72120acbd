/**
 * Seeded randomness for the churn soak: one seed decides the whole schedule (which call, which pod,
 * when a process is killed, which fault comes next), so a failing run can be replayed. Each actor
 * (a node's runtime, its DaemonSet, the fault scheduler) draws from its own stream, forked by name,
 * so the timing of one actor does not shift the choices of another.
 */

/** mulberry32: small, fast and good enough to drive a test schedule (not for anything secret). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string: how a stream's name becomes part of its seed. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  /** An independent stream for one actor, named so the same seed always gives it the same choices. */
  fork(name: string): Rng {
    return new Rng((hash(name) ^ Math.imul(this.seed, 0x9e3779b1)) >>> 0);
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A key of `weights` chosen with probability proportional to its weight. */
  weighted<K extends string>(weights: Record<K, number>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((n, [, w]) => n + Math.max(0, w), 0);
    let r = this.next() * total;
    for (const [k, w] of entries) {
      r -= Math.max(0, w);
      if (r < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
}

/** The seed to use: the given text (decimal or 0x hex), else a fresh random one. */
export function seedFrom(text: string | undefined): number {
  if (text === undefined || text === '') return (Math.random() * 2 ** 32) >>> 0;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) {
    throw new Error(`churn seed must be an integer in [0, 2^32), got "${text}"`);
  }
  return n;
}
