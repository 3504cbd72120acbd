/**
 * Renders the vpc-cni Helm chart without helm: values.yaml merged with overrides the way `--set`
 * merges them, every template run through ./template.ts, the output parsed into Kubernetes objects.
 * The CDK app and the tests use this; `infra/k8s/aws-node.yaml` is its output for the defaults.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { templateSet } from './template.js';

export const CHART_DIR = new URL('./vpc-cni/', import.meta.url).pathname;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderOptions {
  /** Deep-merged over values.yaml; maps merge key by key, everything else replaces. */
  values?: Record<string, unknown>;
  releaseName?: string;
  namespace?: string;
  /** Include the CRDs from crds/ (helm install does; helm template only with --include-crds). */
  includeCrds?: boolean;
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergeValues(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isMap(v) && isMap(out[k]) ? mergeValues(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

export function chartDefaults(chartDir = CHART_DIR): Record<string, unknown> {
  return parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as Record<string, unknown>;
}

function objectsOf(text: string, file: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0)
      throw new Error(`${file}: rendered YAML is invalid: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as unknown;
    if (obj === null || obj === undefined) continue;
    if (
      !isMap(obj) ||
      typeof obj.kind !== 'string' ||
      typeof obj.apiVersion !== 'string' ||
      !isMap(obj.metadata)
    ) {
      throw new Error(`${file}: rendered a document that is not a Kubernetes object`);
    }
    out.push(obj as K8sObject);
  }
  return out;
}

// Helm's install order for the kinds the chart has: definitions and identities before the workload,
// custom resources last (their CRD must exist first).
const KIND_ORDER = [
  'CustomResourceDefinition',
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'DaemonSet',
];

function installRank(o: K8sObject): number {
  const i = KIND_ORDER.indexOf(o.kind);
  return i < 0 ? KIND_ORDER.length : i;
}

/** Renders the chart into its objects in install order (CRDs first, custom resources last). */
export function renderChart(opts: RenderOptions = {}, chartDir = CHART_DIR): K8sObject[] {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, string>;
  const values = mergeValues(chartDefaults(chartDir), opts.values ?? {});
  const root = {
    Values: values,
    Release: {
      Name: opts.releaseName ?? 'aws-vpc-cni',
      Namespace: opts.namespace ?? 'kube-system',
      Service: 'Helm',
    },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const objects: K8sObject[] = [];
  if (opts.includeCrds ?? true) {
    for (const f of readdirSync(join(chartDir, 'crds')).sort()) {
      objects.push(...objectsOf(readFileSync(join(chartDir, 'crds', f), 'utf8'), `crds/${f}`));
    }
  }
  const tdir = join(chartDir, 'templates');
  const files = readdirSync(tdir).sort();
  const set = templateSet();
  // Helpers first so every template can include what they define.
  for (const f of [...files.filter((x) => x.startsWith('_')), ...files.filter((x) => !x.startsWith('_'))]) {
    set.add(`templates/${f}`, readFileSync(join(tdir, f), 'utf8'));
  }
  for (const f of files.filter((x) => !x.startsWith('_') && /\.ya?ml$/.test(x))) {
    objects.push(...objectsOf(set.render(`templates/${f}`, root), `templates/${f}`));
  }
  // Array.prototype.sort is stable: within a kind, file order stays.
  return objects.sort((a, b) => installRank(a) - installRank(b));
}

/** The objects as one multi-document YAML stream, the form `kubectl apply -f` takes. */
export function toYamlStream(objects: K8sObject[]): string {
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}
