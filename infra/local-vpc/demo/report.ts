/**
 * What the demo prints at the end: where every pod landed (instance, ENI, device, address, pod,
 * node), the ENIs with their warm addresses, the connectivity matrix, and the EC2 calls it took.
 * Pure functions of plain rows, so the layout is tested without a VPC.
 */
import type { CallRecord, CallSummary } from '../ec2/call-log.js';

/** Left-aligned columns separated by two spaces; a dashed rule under the header. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export interface PlacementRow {
  instance: string;
  eni: string;
  /** Device index on the instance (0 = primary ENI). */
  device: number;
  address: string;
  pod: string;
  node: string;
}

function ipKey(address: string): number {
  return address.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function placementTable(rows: readonly PlacementRow[]): string {
  const sorted = [...rows].sort(
    (a, b) =>
      a.node.localeCompare(b.node) ||
      a.instance.localeCompare(b.instance) ||
      a.device - b.device ||
      ipKey(a.address) - ipKey(b.address),
  );
  return renderTable(
    ['INSTANCE', 'ENI', 'DEVICE', 'ADDRESS', 'POD', 'NODE'],
    sorted.map((r) => [
      r.instance,
      r.eni,
      `eth${r.device}${r.device === 0 ? ' (primary)' : ''}`,
      r.address,
      r.pod,
      r.node,
    ]),
  );
}

export interface EniRow {
  instance: string;
  eni: string;
  device: number;
  subnet: string;
  primaryIp: string;
  /** Secondary addresses EC2 has assigned to the ENI. */
  secondary: number;
  /** Of those, how many pods use. */
  used: number;
}

export function eniTable(rows: readonly EniRow[]): string {
  return renderTable(
    ['INSTANCE', 'ENI', 'DEVICE', 'SUBNET', 'ENI ADDRESS', 'SECONDARY IPS', 'PODS', 'WARM'],
    rows.map((r) => [
      r.instance,
      r.eni,
      `eth${r.device}`,
      r.subnet,
      r.primaryIp,
      String(r.secondary),
      String(r.used),
      String(r.secondary - r.used),
    ]),
  );
}

export interface CheckRow {
  pod: string;
  address: string;
  node: string;
  device: number | undefined;
  /** By check kind: "ok -> demo-03", "FAIL -> demo-03 (no reply)", or absent when not run. */
  results: Partial<Record<'same-node' | 'cross-node' | 'internet', { ok: boolean; text: string }>>;
}

export function checkTable(rows: readonly CheckRow[]): string {
  const cell = (r: CheckRow, k: keyof CheckRow['results']) => {
    const c = r.results[k];
    return c ? `${c.ok ? 'ok  ' : 'FAIL'} ${c.text}` : 'n/a';
  };
  return renderTable(
    ['POD', 'ADDRESS', 'NODE', 'ENI', 'SAME NODE', 'CROSS NODE', 'INTERNET (SNAT)'],
    rows.map((r) => [
      r.pod,
      r.address,
      r.node,
      r.device === undefined ? '?' : `eth${r.device}`,
      cell(r, 'same-node'),
      cell(r, 'cross-node'),
      cell(r, 'internet'),
    ]),
  );
}

/** EC2 calls per action (most first), with errors and throttles, and the calls per node. */
export function ec2CallsTable(summary: CallSummary, callerLabels: ReadonlyMap<string, string>): string {
  const actions = Object.entries(summary.byAction).sort(
    (a, b) => b[1].calls - a[1].calls || a[0].localeCompare(b[0]),
  );
  const callers = [...callerLabels.entries()];
  const rows = actions.map(([action, counts]) => [
    action,
    String(counts.calls),
    ...callers.map(([key]) => String(summary.byCaller[key]?.[action] ?? 0)),
    String(counts.errors),
    String(counts.throttled),
  ]);
  const perCaller = callers.map(([key]) =>
    String(Object.values(summary.byCaller[key] ?? {}).reduce((n, c) => n + c, 0)),
  );
  const errors = actions.reduce((n, [, c]) => n + c.errors, 0);
  const throttled = actions.reduce((n, [, c]) => n + c.throttled, 0);
  rows.push(['total', String(summary.total), ...perCaller, String(errors), String(throttled)]);
  return renderTable(
    ['EC2 ACTION', 'CALLS', ...callers.map(([, label]) => label), 'ERRORS', 'THROTTLED'],
    rows,
  );
}

/** "AttachNetworkInterface: AttachmentLimitExceeded x3", one line per action and error code. */
export function ec2ErrorLines(calls: readonly CallRecord[]): string[] {
  const counts = new Map<string, number>();
  for (const c of calls) {
    if (!c.errorCode) continue;
    const key = `${c.action}: ${c.errorCode}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} x${n}`);
}
