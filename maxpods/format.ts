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

const LEFT_ALIGNED = new Set([0, 2, 6]);
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
  // Column by column with plain loops: this runs cold, once per process, over 1391 rows, where per-cell
  // closures and padStart calls cost twice as much.
  const n = results.length;
  const columns: string[][] = TABLE_HEAD.map((h) => [h]);
  const [name, vcpus, hv, enis, ipv4, podEnis, mode, maxAllowed, recommended] = columns as [
    string[],
    string[],
    string[],
    string[],
    string[],
    string[],
    string[],
    string[],
    string[],
  ];
  for (let i = 0; i < n; i++) {
    const r = results[i]!;
    const l = r.limits;
    name.push(r.instanceType);
    vcpus.push(l.vcpus === null ? '-' : `${l.vcpus}`);
    hv.push(l.bareMetal ? `${l.hypervisor}/metal` : l.hypervisor);
    enis.push(`${l.enis}`);
    ipv4.push(`${l.ipv4PerEni}`);
    podEnis.push(`${r.enisForPods}`);
    mode.push(r.mode === 'prefix-delegation' ? 'prefix' : 'secondary-ip');
    maxAllowed.push(`${r.maxAllowed}`);
    recommended.push(r.recommended === null ? '-' : `${r.recommended}`);
  }
  const lines: string[] = new Array(n + 1).fill('');
  for (let c = 0; c < columns.length; c++) {
    const col = columns[c]!;
    let width = 0;
    for (let i = 0; i <= n; i++) if (col[i]!.length > width) width = col[i]!.length;
    const spaces = ' '.repeat(width);
    // Names left-aligned, numbers right-aligned; nothing pads the end of a line.
    const left = LEFT_ALIGNED.has(c) && c < columns.length - 1;
    const sep = c === 0 ? '' : '  ';
    for (let i = 0; i <= n; i++) {
      const cell = col[i]!;
      const pad = spaces.slice(cell.length);
      lines[i] += left ? `${sep}${cell}${pad}` : `${sep}${pad}${cell}`;
    }
  }
  return `${lines.join('\n')}\n`;
}
