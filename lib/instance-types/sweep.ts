/**
 * The live sweep behind scripts/sweep-instance-types.ts: DescribeInstanceTypes in every enabled region,
 * merged into one table. A type's limits must be the same wherever it is offered; when regions disagree
 * the sweep fails and names the type, the field and the regions, because a silent pick would give some
 * nodes a wrong max-pods.
 */
import { DescribeRegionsCommand, type EC2Client, paginateDescribeInstanceTypes } from '@aws-sdk/client-ec2';
import { limitsFromInstanceTypeInfo } from './describe.js';
import type { InstanceTypeLimits } from './types.js';

export interface RegionSweep {
  region: string;
  types: InstanceTypeLimits[];
}

export class SweepError extends Error {
  override name = 'SweepError';
}

/** Regions the account can call (DescribeRegions without AllRegions: opted-in ones only), sorted. */
export async function listRegions(ec2: EC2Client): Promise<string[]> {
  const reply = await ec2.send(new DescribeRegionsCommand({}));
  const regions = (reply.Regions ?? []).map((r) => r.RegionName).filter((r): r is string => !!r);
  if (regions.length === 0) throw new SweepError('DescribeRegions returned no regions');
  return regions.sort();
}

/** Every instance type one region offers, following NextToken to the last page. */
export async function sweepRegion(region: string, ec2: EC2Client): Promise<RegionSweep> {
  const types: InstanceTypeLimits[] = [];
  try {
    for await (const page of paginateDescribeInstanceTypes({ client: ec2, pageSize: 100 }, {})) {
      for (const info of page.InstanceTypes ?? []) types.push(limitsFromInstanceTypeInfo(info));
    }
  } catch (err) {
    const e = err as Error;
    throw new SweepError(`DescribeInstanceTypes in ${region} failed: ${e.name}: ${e.message}`);
  }
  if (types.length === 0)
    throw new SweepError(`DescribeInstanceTypes in ${region} returned no instance types`);
  return { region, types };
}

/** The fields that must agree across regions, as printable values. */
function fingerprint(t: InstanceTypeLimits): Record<string, string> {
  return {
    enis: String(t.enis),
    ipv4PerEni: String(t.ipv4PerEni),
    networkCards: t.networkCards.map((c) => `${c.index}:${c.maxEnis}`).join(','),
    defaultNetworkCardIndex: String(t.defaultNetworkCardIndex),
    hypervisor: t.hypervisor,
    bareMetal: String(t.bareMetal),
  };
}

/**
 * One entry a type. Throws a SweepError listing every disagreement. A vCPU figure missing in one
 * region is not a disagreement: the regions that give one decide (and must agree among themselves).
 */
export function mergeRegionSweeps(sweeps: RegionSweep[]): Map<string, InstanceTypeLimits> {
  const seen = new Map<string, { region: string; limits: InstanceTypeLimits }[]>();
  for (const s of sweeps) {
    for (const t of s.types) {
      const list = seen.get(t.name) ?? [];
      list.push({ region: s.region, limits: t });
      seen.set(t.name, list);
    }
  }
  const problems: string[] = [];
  const merged = new Map<string, InstanceTypeLimits>();
  for (const name of [...seen.keys()].sort()) {
    const offers = seen.get(name)!;
    const fields = Object.keys(fingerprint(offers[0]!.limits));
    for (const field of [...fields, 'vcpus']) {
      const regionsByValue = new Map<string, string[]>();
      for (const o of offers) {
        const value = field === 'vcpus' ? o.limits.vcpus : fingerprint(o.limits)[field];
        if (value === null) continue;
        const key = String(value);
        regionsByValue.set(key, [...(regionsByValue.get(key) ?? []), o.region]);
      }
      if (regionsByValue.size > 1) {
        const detail = [...regionsByValue].map(([v, regions]) => `${v} in ${regions.join(', ')}`).join('; ');
        problems.push(`${name} ${field}: ${detail}`);
      }
    }
    const first = offers[0]!.limits;
    const vcpus = offers.find((o) => o.limits.vcpus !== null)?.limits.vcpus ?? null;
    merged.set(name, { ...first, vcpus });
  }
  if (problems.length > 0) {
    throw new SweepError(
      `regions disagree on ${problems.length} instance-type limits; the table was not written:\n  ${problems.join('\n  ')}`,
    );
  }
  return merged;
}

export interface PreviousEntry {
  vcpus: number | null;
  vcpusSource?: string;
}

/** The instance-types.json shape (as lib/instance-types/seed/instance-types.json has it), keys sorted. */
export function toInstanceTypesJson(
  merged: Map<string, InstanceTypeLimits>,
  previous: Record<string, PreviousEntry> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of [...merged.keys()].sort()) {
    const t = merged.get(name)!;
    // EC2 gives no vCPU figure for a few types (some Mac and bare-metal ones): keep the earlier table's.
    const prev = previous[name];
    const vcpus = t.vcpus ?? prev?.vcpus ?? null;
    const vcpusSource =
      t.vcpus !== null
        ? 'describe-instance-types'
        : vcpus !== null
          ? (prev?.vcpusSource ?? 'previous-table')
          : 'unknown';
    out[name] = {
      bareMetal: t.bareMetal,
      defaultNetworkCardIndex: t.defaultNetworkCardIndex,
      enis: t.enis,
      hypervisor: t.hypervisor,
      ipv4PerEni: t.ipv4PerEni,
      networkCards: t.networkCards.map((c) => ({
        maximumNetworkInterfaces: c.maxEnis,
        networkCardIndex: c.index,
      })),
      vcpus,
      vcpusSource,
    };
  }
  return out;
}

export interface SweepOptions {
  /** Where DescribeRegions is asked. */
  homeRegion: string;
  clientFor(region: string): EC2Client;
  /** Regions swept at once. */
  concurrency?: number;
  onRegionDone?(sweep: RegionSweep): void;
}

/** Sweeps every enabled region and merges; throws SweepError on any failed region or disagreement. */
export async function sweepAllRegions(opts: SweepOptions): Promise<Map<string, InstanceTypeLimits>> {
  const regions = await listRegions(opts.clientFor(opts.homeRegion));
  const sweeps: RegionSweep[] = [];
  const failures: string[] = [];
  const queue = [...regions];
  const worker = async () => {
    for (let region = queue.shift(); region !== undefined; region = queue.shift()) {
      try {
        const s = await sweepRegion(region, opts.clientFor(region));
        sweeps.push(s);
        opts.onRegionDone?.(s);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, regions.length) }, worker));
  if (failures.length > 0) {
    throw new SweepError(
      `the sweep is incomplete; ${failures.length} regions failed:\n  ${failures.sort().join('\n  ')}`,
    );
  }
  return mergeRegionSweeps(sweeps.sort((a, b) => a.region.localeCompare(b.region)));
}
