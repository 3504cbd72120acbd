/** Renders calculator results: the plain number scripts parse, JSON with the derivation, or a table. */
import type { MaxPodsOptions, MaxPodsResult } from './compute.js';

export type OutputFormat = 'plain' | 'json' | 'table';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['plain', 'json', 'table'];

/** What plain output prints: the uncapped value with --show-max-allowed, else the recommended one. */
export function chosenValue(r: MaxPodsResult, showMaxAllowed: boolean): number | null {
  return showMaxAllowed ? r.maxAllowed : r.recommended;
}

function inputsJson(opts: MaxPodsOptions, showMaxAllowed: boolean) {
  return {
    cniVersion: opts.cniVersion.raw,
    customNetworking: opts.customNetworking,
    prefixDelegation: opts.prefixDelegation,
    maxEni: opts.maxEni ?? null,
    trunk: opts.trunk,
    showMaxAllowed,
  };
}

function resultJson(r: MaxPodsResult, showMaxAllowed: boolean) {
  const l = r.limits;
  return {
    instanceType: r.instanceType,
    maxPods: chosenValue(r, showMaxAllowed),
    maxAllowed: r.maxAllowed,
    recommended: r.recommended,
    cap: r.cap,
    mode: r.mode,
    enisForPods: r.enisForPods,
    podAddressesPerEni: r.podAddressesPerEni,
    formula: r.formula,
    limits: {
      enis: l.enis,
      ipv4PerEni: l.ipv4PerEni,
      vcpus: l.vcpus,
      hypervisor: l.hypervisor,
      bareMetal: l.bareMetal,
      defaultNetworkCardIndex: l.defaultNetworkCardIndex,
      networkCards: l.networkCards,
    },
    notes: r.fallbacks.map((f) => f.message),
  };
}

export function renderOne(
  r: MaxPodsResult,
  format: OutputFormat,
  opts: MaxPodsOptions,
  showMaxAllowed: boolean,
): string {
  if (format === 'plain') return `${chosenValue(r, showMaxAllowed)}\n`;
  if (format === 'json') {
    return `${JSON.stringify({ inputs: inputsJson(opts, showMaxAllowed), ...resultJson(r, showMaxAllowed) }, null, 2)}\n`;
  }
  const l = r.limits;
  const cards = l.networkCards.map((c) => `${c.index}:${c.maxEnis}`).join(' ');
  const rows: [string, string][] = [
    ['instance type', r.instanceType],
    ['cni version', opts.cniVersion.raw],
    ['hypervisor', `${l.hypervisor}${l.bareMetal ? ' (bare metal)' : ''}`],
    ['vcpus', l.vcpus === null ? 'unknown' : String(l.vcpus)],
    ['network cards', `${cards} (card:max ENIs; default ${l.defaultNetworkCardIndex})`],
    ['enis (default card)', String(l.enis)],
    ['ipv4 per eni', String(l.ipv4PerEni)],
    ['max eni', opts.maxEni === undefined ? 'all' : String(opts.maxEni)],
    ['custom networking', opts.customNetworking ? 'yes (primary ENI not used for pods)' : 'no'],
    ['trunk eni', opts.trunk ? 'reserved for security groups for pods' : 'no'],
    ['mode', r.mode],
    ['enis for pods', String(r.enisForPods)],
    ['pod addresses per eni', String(r.podAddressesPerEni)],
    ['max allowed', r.formula],
    ['cap', r.cap === null ? 'unknown (vCPUs unknown)' : `${r.cap} (${l.vcpus} vCPUs)`],
    ['recommended', r.recommended === null ? 'unknown' : String(r.recommended)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\n`;
}

const COLUMNS = 9;
const TABLE_HEAD = [
  'INSTANCE TYPE',
  'VCPUS',
  'HYPERVISOR',
  'ENIS',
  'IPV4/ENI',
  'POD ENIS',
  'MODE',
  'MAX ALLOWED',
  'RECOMMENDED',
];

export function renderMany(
  results: MaxPodsResult[],
  format: OutputFormat,
  opts: MaxPodsOptions,
  showMaxAllowed: boolean,
): string {
  if (format === 'json') {
    return `${JSON.stringify(
      {
        inputs: inputsJson(opts, showMaxAllowed),
        count: results.length,
        instanceTypes: results.map((r) => resultJson(r, showMaxAllowed)),
      },
      null,
      1,
    )}\n`;
  }
  if (format === 'plain') {
    // The eni-max-pods.txt shape: type, tab, value.
    return results.map((r) => `${r.instanceType}\t${chosenValue(r, showMaxAllowed) ?? '-'}\n`).join('');
  }
  // Straight-line code, no per-cell arrays: this runs once per process, cold, for 1391 rows.
  const cells: string[] = new Array(results.length * COLUMNS);
  const widths = TABLE_HEAD.map((h) => h.length);
  results.forEach((r, i) => {
    const l = r.limits;
    const row = i * COLUMNS;
    cells[row] = r.instanceType;
    cells[row + 1] = l.vcpus === null ? '-' : String(l.vcpus);
    cells[row + 2] = l.bareMetal ? `${l.hypervisor}/metal` : l.hypervisor;
    cells[row + 3] = String(l.enis);
    cells[row + 4] = String(l.ipv4PerEni);
    cells[row + 5] = String(r.enisForPods);
    cells[row + 6] = r.mode === 'prefix-delegation' ? 'prefix' : 'secondary-ip';
    cells[row + 7] = String(r.maxAllowed);
    cells[row + 8] = r.recommended === null ? '-' : String(r.recommended);
    for (let c = 0; c < COLUMNS; c++)
      if (cells[row + c]!.length > widths[c]!) widths[c] = cells[row + c]!.length;
  });
  // Names left-aligned, numbers right-aligned; the last column needs no padding after it.
  const w = widths as [number, number, number, number, number, number, number, number, number];
  const line = (get: (c: number) => string) =>
    `${get(0).padEnd(w[0])}  ${get(1).padStart(w[1])}  ${get(2).padEnd(w[2])}  ${get(3).padStart(w[3])}  ` +
    `${get(4).padStart(w[4])}  ${get(5).padStart(w[5])}  ${get(6).padEnd(w[6])}  ${get(7).padStart(w[7])}  ` +
    `${get(8).padStart(w[8])}\n`;
  let out = line((c) => TABLE_HEAD[c]!);
  for (let i = 0; i < results.length; i++) out += line((c) => cells[i * COLUMNS + c]!);
  return out;
}
