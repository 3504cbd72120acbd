/**
 * What a churn run did and found: counters by name (calls per kind and exit, kills, faults, retries,
 * invariant checks) and the invariant violations, each with enough context to read the failure
 * without the logs. One tally per run, shared by every actor, printed at the end with the seed.
 */

export interface Violation {
  /** Which invariant (a short stable name, e.g. "two-live-pods-one-address"). */
  invariant: string;
  /** Seconds since the run started. */
  at: number;
  detail: string;
}

export class Tally {
  readonly counts = new Map<string, number>();
  readonly violations: Violation[] = [];
  /** What happened when, one line per event (calls, kills, faults): written beside the ipamd logs. */
  readonly journal: string[] = [];
  /** The largest number of attempts one DEL took before it succeeded. */
  maxDelAttempts = 0;
  private readonly started = Date.now();

  constructor(
    readonly seed: number,
    readonly label: string,
  ) {}

  inc(name: string, by = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + by);
  }

  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  /** Seconds since the run started (for log lines and violations). */
  elapsed(): number {
    return (Date.now() - this.started) / 1000;
  }

  note(line: string): void {
    this.journal.push(`${this.elapsed().toFixed(2)} ${line}`);
  }

  violate(invariant: string, detail: string): void {
    this.inc(`violation ${invariant}`);
    this.note(`VIOLATION ${invariant}: ${detail}`);
    // Keep the first few of each kind: a broken invariant tends to break many times.
    if (this.violations.filter((v) => v.invariant === invariant).length < 10) {
      this.violations.push({ invariant, at: Number(this.elapsed().toFixed(1)), detail });
    }
  }

  /** Counters whose name starts with `prefix `, without the prefix. */
  group(prefix: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of [...this.counts].sort(([a], [b]) => a.localeCompare(b))) {
      if (k.startsWith(`${prefix} `)) out[k.slice(prefix.length + 1)] = v;
    }
    return out;
  }

  sum(prefix: string): number {
    return Object.values(this.group(prefix)).reduce((a, b) => a + b, 0);
  }

  /** The report: counters grouped by their first word, then the violations. */
  format(): string {
    const groups = new Map<string, string[]>();
    for (const [k, v] of [...this.counts].sort(([a], [b]) => a.localeCompare(b))) {
      const [head, ...rest] = k.split(' ');
      const list = groups.get(head!) ?? [];
      list.push(rest.length > 0 ? `${rest.join(' ')}=${v}` : String(v));
      groups.set(head!, list);
    }
    const lines = [
      `churn ${this.label}: seed ${this.seed} (replay: CHURN_SEED=${this.seed}), ${this.elapsed().toFixed(0)} s`,
      ...[...groups].map(([head, items]) => `  ${head}: ${items.join(', ')}`),
      `  del max-attempts: ${this.maxDelAttempts}`,
    ];
    if (this.violations.length === 0) lines.push('  violations: none');
    else {
      lines.push(`  violations (${this.sum('violation')}):`);
      for (const v of this.violations) lines.push(`    [${v.at}s] ${v.invariant}: ${v.detail}`);
    }
    return lines.join('\n');
  }
}
