import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import {
  CHART_DIR,
  chartDefaults,
  type K8sObject,
  mergeValues,
  renderChart,
} from '../../../infra/helm/chart.js';
import { MANIFEST_PATH, renderDefaultManifest } from '../../../infra/k8s/render.js';
import { ipamdEnvNames, PLATFORM_ENV } from './helpers.js';
import { eniConfigValidator, validateK8sObject } from './k8s-validate.js';

const ROOT = new URL('../../../', import.meta.url).pathname;

// biome-ignore lint/suspicious/noExplicitAny: rendered objects are walked by path in assertions
type Any = any;

const defaults = renderChart();
const customValues = {
  env: {
    ENABLE_PREFIX_DELEGATION: 'true',
    WARM_PREFIX_TARGET: '1',
    CLUSTER_NAME: 'test',
    DISABLE_METRICS: 'true',
  },
  image: { repository: '123456789012.dkr.ecr.us-east-1.amazonaws.com/vpc-cni', tag: 'abc' },
  serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/cni' } },
  imagePullSecrets: [{ name: 'regcred' }],
  eniConfigs: {
    'us-east-1a': { subnet: 'subnet-0a1b2c3d', securityGroups: ['sg-0a1b2c3d'] },
    'us-east-1b': { subnet: 'subnet-0e1f2a3b' },
  },
};
const customised = renderChart({ values: customValues });

function one(objects: K8sObject[], kind: string): Any {
  const found = objects.filter((o) => o.kind === kind);
  expect(found, kind).toHaveLength(1);
  return found[0];
}

/** Kubernetes toleration semantics: does this toleration list let a pod onto a node with the taint? */
function tolerates(tolerations: Any[], taint: { key: string; value?: string; effect: string }): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** Names of the env vars ipamd's configuration module reads: its quoted NAME_LIKE_THIS literals. */

function ipamdSources(dir = join(ROOT, 'ipamd')): string {
  let out = '';
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out += ipamdSources(p);
    else if (e.endsWith('.ts') && !e.endsWith('.test.ts')) out += readFileSync(p, 'utf8');
  }
  return out;
}

describe('rendered manifests pass the Kubernetes OpenAPI schemas', () => {
  for (const [label, objects] of [
    ['defaults', defaults],
    ['customised values', customised],
  ] as const) {
    it(`every object (${label})`, async () => {
      expect(objects.length).toBeGreaterThanOrEqual(5);
      const problems = (await Promise.all(objects.map(validateK8sObject))).flat();
      expect(problems).toEqual([]);
    });
  }

  it('the validator catches a wrong type and an unknown field', async () => {
    const ds = structuredClone(one(defaults, 'DaemonSet'));
    ds.spec.template.spec.hostNetwok = true;
    ds.spec.template.spec.containers[0].image = 42;
    const problems = (await validateK8sObject(ds)).join('\n');
    expect(problems).toMatch(/hostNetwok: unknown field/);
    expect(problems).toMatch(/image must be string/);
  });

  it('infra/k8s/aws-node.yaml is the chart rendered with its defaults', () => {
    expect(readFileSync(MANIFEST_PATH, 'utf8'), 'stale: run npx tsx infra/k8s/render.ts').toBe(
      renderDefaultManifest(),
    );
  });
});

describe('the aws-node DaemonSet', () => {
  const ds = one(defaults, 'DaemonSet');
  const pod = ds.spec.template.spec;
  const main = pod.containers.find((c: Any) => c.name === 'aws-node');
  const init = pod.initContainers.find((c: Any) => c.name === 'aws-vpc-cni-init');

  it('runs in the host network namespace at node-critical priority in kube-system', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    // Cluster DNS runs in pods that need this CNI first: ipamd must resolve EC2 through the node.
    expect(pod.dnsPolicy).toBe('Default');
    expect(ds.metadata.namespace).toBe('kube-system');
    expect(pod.serviceAccountName).toBe(one(defaults, 'ServiceAccount').metadata.name);
  });

  it('tolerates every taint', () => {
    for (const taint of [
      { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' },
      { key: 'node.cloudprovider.kubernetes.io/uninitialized', value: 'true', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' },
      { key: 'CriticalAddonsOnly', value: 'true', effect: 'NoSchedule' },
      { key: 'example.com/dedicated', value: 'gpu', effect: 'PreferNoSchedule' },
    ]) {
      expect(tolerates(pod.tolerations, taint), taint.key).toBe(true);
    }
    expect(tolerates([{ key: 'a', operator: 'Exists' }], { key: 'b', effect: 'NoSchedule' })).toBe(false);
  });

  it('has an init container that sets the sysctls and installs the plugin and calculator', () => {
    expect(init.securityContext.privileged).toBe(true);
    expect(init.command).toEqual(['/opt/vpc-cni/bin/vpc-cni-init']);
    const mounts = Object.fromEntries(init.volumeMounts.map((m: Any) => [m.mountPath, m.name]));
    const hostPath = (name: string) => pod.volumes.find((v: Any) => v.name === name).hostPath.path;
    expect(hostPath(mounts['/host/opt/cni/bin'])).toBe('/opt/cni/bin');
    expect(hostPath(mounts['/host/opt/vpc-cni'])).toBe('/opt/vpc-cni');
    // What the script does with them is run and checked in image.test.ts.
    const script = readFileSync(join(ROOT, 'infra/image/vpc-cni-init'), 'utf8');
    expect(script).toMatch(/set_sysctl net\.ipv4\.ip_forward 1/);
    expect(script).toMatch(/rp_filter" 2/);
  });

  it('leaves the conflist to ipamd, which writes it into the mounted CNI config dir once ready', () => {
    const env = Object.fromEntries(
      main.env.filter((e: Any) => 'value' in e).map((e: Any) => [e.name, e.value]),
    );
    expect(env.WRITE_CNI_CONFLIST).toBe('true');
    expect(main.volumeMounts.map((m: Any) => m.mountPath)).toContain(env.CNI_CONF_DIR);
    expect(init.volumeMounts.map((m: Any) => m.mountPath)).not.toContain(env.CNI_CONF_DIR);
  });

  it('probes ipamd through the exec probe: readiness on pool readiness, liveness on any answer', () => {
    expect(main.readinessProbe.exec.command.join(' ')).toMatch(/ipamd-probe\.mjs$/);
    expect(main.livenessProbe.exec.command.join(' ')).toMatch(/ipamd-probe\.mjs --liveness$/);
    expect(main.livenessProbe.initialDelaySeconds).toBeGreaterThan(0);
  });

  it('requests CPU and memory for every container', () => {
    for (const c of [...pod.containers, ...pod.initContainers]) {
      expect(c.resources.requests.cpu, c.name).toBeTruthy();
      expect(c.resources.requests.memory, c.name).toBeTruthy();
    }
  });

  it('runs ipamd with only the capabilities it needs', () => {
    expect(main.securityContext.privileged).toBeUndefined();
    // Nothing of the runtime's default set; test/integration/node runs ipamd under exactly this.
    expect(main.securityContext.capabilities.drop).toEqual(['ALL']);
    expect(main.securityContext.capabilities.add.sort()).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(main.securityContext.readOnlyRootFilesystem).toBe(true);
  });

  it('adds CHOWN only when the socket is given to a group', () => {
    const grouped = renderChart({ values: { env: { IPAMD_SOCKET_GROUP: '1234' } } });
    const c = one(grouped, 'DaemonSet').spec.template.spec.containers.find((x: Any) => x.name === 'aws-node');
    expect(c.securityContext.capabilities.add.sort()).toEqual(['CHOWN', 'NET_ADMIN', 'NET_RAW']);
  });

  it('keeps the socket and checkpoint inside the mounted run directory', () => {
    const values = chartDefaults() as Any;
    for (const v of ['IPAMD_SOCKET_PATH', 'IPAMD_CHECKPOINT_PATH']) {
      expect(values.env[v].startsWith(`${values.runDir}/`), v).toBe(true);
    }
    expect(main.volumeMounts.map((m: Any) => m.mountPath)).toContain(values.runDir);
  });

  it('applies customised values: image, env, IRSA annotation, no metrics port when metrics are off', () => {
    const cds = one(customised, 'DaemonSet').spec.template.spec;
    const c = cds.containers[0];
    expect(c.image).toBe('123456789012.dkr.ecr.us-east-1.amazonaws.com/vpc-cni:abc');
    expect(cds.initContainers[0].image).toBe(c.image);
    expect(c.env).toContainEqual({ name: 'ENABLE_PREFIX_DELEGATION', value: 'true' });
    expect(c.env).toContainEqual({ name: 'CLUSTER_NAME', value: 'test' });
    expect(c.ports).toBeUndefined();
    expect(main.ports).toEqual([{ name: 'metrics', containerPort: 61678, protocol: 'TCP' }]);
    expect(cds.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(one(customised, 'ServiceAccount').metadata.annotations).toEqual({
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/cni',
    });
  });
});

describe('values.schema.json (helm checks values against it)', () => {
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'));
  const check = new Ajv({ allErrors: true, strict: false }).compile(schema);
  const errors = (over: Record<string, unknown>) => {
    check(mergeValues(chartDefaults(), over));
    return (check.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join('; ');
  };

  it('accepts the defaults and the customised values', () => {
    expect(errors({})).toBe('');
    expect(errors(customValues)).toBe('');
  });

  it('rejects a misspelt variable, a non-string value, a bad pull policy and a bad ENIConfig', () => {
    expect(errors({ env: { WARM_IP_TARGETS: '5' } })).toMatch(/\/env must NOT have additional properties/);
    expect(errors({ env: { WARM_IP_TARGET: 5 } })).toMatch(/\/env\/WARM_IP_TARGET must be string/);
    expect(errors({ image: { pullPolicy: 'Sometimes' } })).toMatch(/\/image\/pullPolicy/);
    expect(errors({ eniConfigs: { a: { subnet: 'sg-1' } } })).toMatch(/\/eniConfigs\/a\/subnet/);
  });

  it('knows every variable ipamd reads, and no other', () => {
    const names = [...ipamdEnvNames()];
    expect(
      Object.keys(schema.properties.env.properties).sort(),
      'update env.properties in infra/helm/vpc-cni/values.schema.json',
    ).toEqual(names.sort());
  });
});

describe('update strategy', () => {
  it('rolls out 10% of nodes at a time by default, and OnDelete drops the rolling-update settings', async () => {
    expect(one(defaults, 'DaemonSet').spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '10%' },
    });
    const onDelete = renderChart({ values: { updateStrategy: { type: 'OnDelete' } } });
    const ds = one(onDelete, 'DaemonSet');
    expect(ds.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(await validateK8sObject(ds)).toEqual([]);
  });
});

describe('Helm values are named after ipamd environment variables', () => {
  const values = chartDefaults() as Any;
  const known = ipamdEnvNames();

  it('every key under env is a variable ipamd reads', () => {
    expect(known.size).toBeGreaterThan(10);
    expect(Object.keys(values.env).filter((k) => !known.has(k))).toEqual([]);
  });

  it('every variable of the contract is a value', () => {
    const contract = readFileSync(join(ROOT, 'docs/dev/contracts.md'), 'utf8');
    const section = contract.split('## ipamd environment')[1]!.split('\n## ')[0]!;
    const names = [...section.matchAll(/\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b/g)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(20);
    expect([...new Set(names)].filter((n) => !(n in values.env) && !PLATFORM_ENV.has(n))).toEqual([]);
  });

  it('every non-empty value reaches the ipamd container and empty ones stay unset', () => {
    const env = one(defaults, 'DaemonSet').spec.template.spec.containers[0].env;
    for (const [k, v] of Object.entries(values.env)) {
      const rendered = env.find((e: Any) => e.name === k);
      if (v === '') expect(rendered, k).toBeUndefined();
      else expect(rendered, k).toEqual({ name: k, value: v });
    }
  });
});

describe('RBAC', () => {
  const role = one(defaults, 'ClusterRole');
  const binding = one(defaults, 'ClusterRoleBinding');

  it('only reads, and only nodes and ENIConfigs', () => {
    const verbs = new Set(role.rules.flatMap((r: Any) => r.verbs));
    expect([...verbs].sort()).toEqual(['get', 'list', 'watch']);
    const resources = role.rules.flatMap((r: Any) =>
      r.resources.map((x: string) => `${r.apiGroups[0]}/${x}`),
    );
    expect(resources.sort()).toEqual(['/nodes', 'crd.k8s.amazonaws.com/eniconfigs']);
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects[0]).toMatchObject({
      kind: 'ServiceAccount',
      name: 'aws-node',
      namespace: 'kube-system',
    });
  });

  const src = ipamdSources();
  it.skipIf(!src.includes('@kubernetes/client-node'))(
    'grants what ipamd reads from the API server, no more',
    () => {
      const readsPods = /\b(readNamespacedPod|listNamespacedPod|listPodForAllNamespaces)\b/.test(src);
      const readsNodes = /\b(readNode|listNode)\b/.test(src);
      const readsEniConfigs = /['"]eniconfigs['"]/.test(src);
      const granted = new Set(role.rules.flatMap((r: Any) => r.resources));
      expect(granted.has('pods')).toBe(readsPods);
      expect(granted.has('nodes')).toBe(readsNodes);
      expect(granted.has('eniconfigs')).toBe(readsEniConfigs);
    },
  );
});

describe('the ENIConfig CRD', () => {
  const crd = one(defaults, 'CustomResourceDefinition');
  const check = eniConfigValidator();
  const eni = (spec: unknown) => ({
    apiVersion: 'crd.k8s.amazonaws.com/v1alpha1',
    kind: 'ENIConfig',
    metadata: { name: 'x' },
    spec,
  });

  it('is crd.k8s.amazonaws.com/v1alpha1, cluster-scoped, with spec.subnet required', () => {
    expect(crd.spec.group).toBe('crd.k8s.amazonaws.com');
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.names.plural).toBe('eniconfigs');
    expect(crd.spec.versions.map((v: Any) => v.name)).toEqual(['v1alpha1']);
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec.required).toEqual(['subnet']);
    expect(spec.properties.securityGroups.type).toBe('array');
  });

  it('accepts good ENIConfigs and rejects bad ones with the field named', () => {
    expect(check(eni({ subnet: 'subnet-0abc', securityGroups: ['sg-0abc'] }))).toEqual([]);
    expect(check(eni({ subnet: 'subnet-0abc' }))).toEqual([]);
    expect(check(eni({ securityGroups: ['sg-0abc'] })).join()).toMatch(/subnet/);
    expect(check(eni({ subnet: 'vpc-1' })).join()).toMatch(/\/spec\/subnet/);
    expect(check(eni({ subnet: 'subnet-1', securityGroups: ['default'] })).join()).toMatch(
      /securityGroups\/0/,
    );
  });

  it('renders one ENIConfig per eniConfigs entry, after the CRD', () => {
    const objs = customised.filter((o) => o.kind === 'ENIConfig');
    expect(objs.map((o) => o.metadata.name)).toEqual(['us-east-1a', 'us-east-1b']);
    expect((objs[1] as Any).spec).toEqual({ subnet: 'subnet-0e1f2a3b' });
    expect(customised.indexOf(objs[0]!)).toBeGreaterThan(
      customised.findIndex((o) => o.kind === 'CustomResourceDefinition'),
    );
    expect(() => renderChart({ values: { eniConfigs: { a: { securityGroups: [] } } } })).toThrow(
      /needs a subnet/,
    );
  });
});
