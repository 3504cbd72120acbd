// Dashboards built for the AWS VPC CNI keep working: ipamd exports every metric family the reference
// exports (test/data/reference-metrics.tsv, written from its source), with the same type and label
// names, in the text format Prometheus scrapes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildInfo, registry } from '../../../ipamd/metrics.js';
import { VPC_CNI_VERSION } from '../../../ipamd/version.js';

interface Family {
  name: string;
  type: string;
  labels: string[];
}

function referenceFamilies(): Family[] {
  return readFileSync('test/data/reference-metrics.tsv', 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const [name, type, labels] = l.split('\t');
      return { name: name!, type: type!, labels: labels ? labels.split(',') : [] };
    });
}

describe('metric families the reference exports', () => {
  const reference = referenceFamilies();

  it('lists the families the issue names (the list itself is not empty or stale)', () => {
    const names = reference.map((f) => f.name);
    for (const n of [
      'awscni_build_info',
      'awscni_pod_eni_error_count',
      'awscni_aws_utils_error_count',
      'awscni_ipamd_startup_duration_seconds',
      'awscni_ipamd_node_initialization_duration_seconds',
      'awscni_force_removed_enis',
      'awscni_force_removed_ips',
    ]) {
      expect(names).toContain(n);
    }
    expect(reference.length).toBe(27);
  });

  it('are all registered with the same type and label names', () => {
    const ours = reference.map((f) => {
      const m = registry.getSingleMetric(f.name) as unknown as
        | { type: string; labelNames?: string[] }
        | undefined;
      return { name: f.name, type: m?.type ?? 'missing', labels: [...(m?.labelNames ?? [])] };
    });
    expect(ours).toEqual(reference);
  });

  it('appear in the scraped text with the same TYPE lines', async () => {
    const text = await registry.metrics();
    for (const f of reference) expect(text, f.name).toContain(`# TYPE ${f.name} ${f.type}\n`);
    // awscni_build_info is a constant 1 with the release; counters keep their names (no _total added).
    expect(text).toMatch(
      new RegExp(`^awscni_build_info\\{version="${VPC_CNI_VERSION}",goversion="node[0-9.]+"\\} 1$`, 'm'),
    );
    expect(text).not.toContain('awscni_force_removed_enis_total');
    expect(buildInfo).toBeDefined();
  });

  it("carries package.json's version", () => {
    expect(VPC_CNI_VERSION).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });
});
