/**
 * A record of every EC2 API call the emulator answered, for tests and benchmarks that assert on EC2
 * traffic ("ipamd made at most 3 DescribeNetworkInterfaces calls").
 *
 * The caller is the access key id from the SigV4 Authorization header when present (give each
 * ipamd its own dummy key to tell them apart), else the client's address.
 *
 * Exports: CallRecord, CallSummary, CallLog (record, entries, summary, count, reset).
 */
export interface CallRecord {
  time: number;
  action: string;
  caller: string;
  httpStatus: number;
  /** EC2 error code when the call failed. */
  errorCode?: string;
  /** The request's parameters other than Action and Version (e.g. `SecondaryPrivateIpAddressCount`). */
  params?: Record<string, string>;
  durationMs: number;
}

export interface ActionCounts {
  calls: number;
  errors: number;
  throttled: number;
}

export interface CallSummary {
  total: number;
  byAction: Record<string, ActionCounts>;
  byCaller: Record<string, Record<string, number>>;
}

export class CallLog {
  private records: CallRecord[] = [];

  constructor(private readonly maxEntries = 100_000) {}

  record(r: CallRecord): void {
    this.records.push(r);
    if (this.records.length > this.maxEntries) this.records.splice(0, this.records.length - this.maxEntries);
  }

  entries(filter: { action?: string; caller?: string } = {}): CallRecord[] {
    return this.records.filter(
      (r) => (!filter.action || r.action === filter.action) && (!filter.caller || r.caller === filter.caller),
    );
  }

  /** Calls of `action` (all actions when absent), optionally from one caller. */
  count(action?: string, caller?: string): number {
    return this.entries({ action, caller }).length;
  }

  summary(): CallSummary {
    const out: CallSummary = { total: this.records.length, byAction: {}, byCaller: {} };
    for (const r of this.records) {
      const a = out.byAction[r.action] ?? { calls: 0, errors: 0, throttled: 0 };
      out.byAction[r.action] = a;
      a.calls++;
      if (r.errorCode) a.errors++;
      if (r.errorCode === 'RequestLimitExceeded') a.throttled++;
      const c = out.byCaller[r.caller] ?? {};
      out.byCaller[r.caller] = c;
      c[r.action] = (c[r.action] ?? 0) + 1;
    }
    return out;
  }

  reset(): void {
    this.records = [];
  }
}
