/**
 * Validation of rendered Kubernetes objects for the deploy and CDK tests:
 *  - the Kubernetes OpenAPI schemas as shipped by `kubernetes-models` (types, required fields, formats),
 *  - unknown fields (a typo like `hostNetwok`), which those schemas allow: walked against the model
 *    attribute maps of `@kubernetes/client-node`, like `kubectl apply --validate=strict`,
 *  - ENIConfig objects against the chart's own CRD schema (ajv).
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parse } from 'yaml';
import type { K8sObject } from '../../../infra/helm/chart.js';

type Validating = new (o: never) => { validate(): void };
/** The kinds the chart and the CDK app emit; an object of any other kind fails validation. */
const SCHEMAS: Record<string, Validating> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
};

type Model = { getAttributeTypeMap(): { baseName: string; type: string }[] };
let models: Record<string, Model> | undefined;

async function clientModels(): Promise<Record<string, Model>> {
  // The package's root entry pulls in an HTTP stack; the generated models alone are what we need.
  models ??= (await import('@kubernetes/client-node/dist/gen/models/all.js' as string)) as Record<
    string,
    Model
  >;
  return models;
}

function unknownFields(
  value: unknown,
  type: string,
  path: string,
  m: Record<string, Model>,
  out: string[],
): void {
  if (value === null || value === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (Array.isArray(value)) {
      value.forEach((v, i) => {
        unknownFields(v, arr[1]!, `${path}[${i}]`, m, out);
      });
    }
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}.${k}`, m, out);
    }
    return;
  }
  const model = m[type];
  if (!model || typeof value !== 'object' || Array.isArray(value)) return;
  const attrs = model.getAttributeTypeMap();
  for (const [k, v] of Object.entries(value)) {
    const attr = attrs.find((a) => a.baseName === k);
    if (!attr) out.push(`${path}.${k}: unknown field for ${type}`);
    else unknownFields(v, attr.type, `${path}.${k}`, m, out);
  }
}

function modelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop()!;
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

const CRD_PATH = new URL('../../../infra/helm/vpc-cni/crds/eniconfigs.yaml', import.meta.url);

export function eniConfigValidator(): (obj: unknown) => string[] {
  const crd = parse(readFileSync(CRD_PATH, 'utf8'));
  const schema = crd.spec.versions[0].schema.openAPIV3Schema;
  const ajv = new Ajv({ strict: false, allErrors: true });
  const check = ajv.compile(schema);
  return (obj) =>
    check(obj) ? [] : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`);
}

/** Every problem with one object; empty when it would pass the API server's validation of shape. */
export async function validateK8sObject(obj: K8sObject): Promise<string[]> {
  const where = `${obj.kind}/${obj.metadata?.name}`;
  if (obj.apiVersion === 'crd.k8s.amazonaws.com/v1alpha1' && obj.kind === 'ENIConfig') {
    return eniConfigValidator()(obj).map((p) => `${where}: ${p}`);
  }
  const problems: string[] = [];
  const Cls = SCHEMAS[`${obj.apiVersion}/${obj.kind}`];
  if (!Cls) return [`${where}: no schema for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Cls(obj as never).validate();
  } catch (err) {
    problems.push(`${where}: ${(err as Error).message}`);
  }
  const m = await clientModels();
  const name = modelName(obj.apiVersion, obj.kind);
  if (!m[name]) problems.push(`${where}: no model ${name} for the unknown-field check`);
  else unknownFields(obj, name, where, m, problems);
  return problems;
}
