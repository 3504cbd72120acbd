// Deployment artifacts keep the AWS VPC CNI's on-node files: the log directory mounted where the
// reference writes ipamd.log and plugin.log (chart, manifest, systemd unit), pods patchable only with
// ANNOTATE_POD_IP, and the configured log paths inside the directories they mount.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chartDefaults, type K8sObject, renderChart } from '../../../infra/helm/chart.js';
import { loadConfig } from '../../../ipamd/config.js';
import { validateK8sObject } from './k8s-validate.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
// biome-ignore lint/suspicious/noExplicitAny: rendered objects are walked by path in assertions
type Any = any;
const kind = (objs: K8sObject[], k: string): Any => objs.find((o) => o.kind === k);

describe('chart and manifest: the reference log directory', () => {
  const objs = renderChart();
  const ds = kind(objs, 'DaemonSet');
  const main = ds.spec.template.spec.containers[0];
  const env = Object.fromEntries(
    main.env.filter((e: Any) => 'value' in e).map((e: Any) => [e.name, e.value]),
  );

  it('mounts the host /var/log/aws-routed-eni at /host/var/log/aws-routed-eni and at its own path', async () => {
    const vol = ds.spec.template.spec.volumes.find((v: Any) => v.name === 'log-dir');
    expect(vol.hostPath).toEqual({ path: '/var/log/aws-routed-eni', type: 'DirectoryOrCreate' });
    const mounts = main.volumeMounts.filter((m: Any) => m.name === 'log-dir').map((m: Any) => m.mountPath);
    expect(mounts.sort()).toEqual(['/host/var/log/aws-routed-eni', '/var/log/aws-routed-eni']);
    expect(await validateK8sObject(ds)).toEqual([]);
  });

  it("sets the reference's log variables, which ipamd accepts as they are", () => {
    expect(env.AWS_VPC_K8S_CNI_LOG_FILE).toBe('/host/var/log/aws-routed-eni/ipamd.log');
    expect(env.AWS_VPC_K8S_PLUGIN_LOG_FILE).toBe('/var/log/aws-routed-eni/plugin.log');
    expect(env.AWS_VPC_CNI_NODE_PORT_SUPPORT).toBe('true');
    expect(env.AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT).toBeUndefined(); // the alias stays unset
    const cfg = loadConfig(env);
    expect(cfg.logFile.startsWith('/host/var/log/aws-routed-eni/')).toBe(true);
    expect(cfg.pluginLogDir).toBe('/var/log/aws-routed-eni');
    expect(chartDefaults().logDir).toBe('/var/log/aws-routed-eni');
  });

  it('the committed manifest is that rendering', () => {
    const manifest = readFileSync(join(ROOT, 'infra/k8s/aws-node.yaml'), 'utf8');
    expect(manifest).toContain('mountPath: /host/var/log/aws-routed-eni');
    expect(manifest).toContain('path: /var/log/aws-routed-eni');
  });
});

describe('RBAC follows ANNOTATE_POD_IP', () => {
  const podRules = (objs: K8sObject[]) =>
    kind(objs, 'ClusterRole').rules.filter((r: Any) => r.resources.includes('pods'));

  it('grants nothing on pods by default, get and patch with the setting', () => {
    expect(podRules(renderChart())).toEqual([]);
    expect(podRules(renderChart({ values: { env: { ANNOTATE_POD_IP: 'true' } } }))).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'patch'] },
    ]);
  });
});

describe('the systemd unit and its environment file', () => {
  const unit = readFileSync(join(ROOT, 'infra/ami/vpc-cni-ipamd.service'), 'utf8');
  const envFile = Object.fromEntries(
    readFileSync(join(ROOT, 'infra/ami/ipamd.env'), 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z]/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );

  it('creates /var/log/aws-routed-eni and logs there, at the node paths', () => {
    expect(unit).toMatch(/^LogsDirectory=aws-routed-eni$/m);
    expect(envFile.AWS_VPC_K8S_CNI_LOG_FILE).toBe('/var/log/aws-routed-eni/ipamd.log');
    expect(envFile.AWS_VPC_K8S_PLUGIN_LOG_FILE).toBe('/var/log/aws-routed-eni/plugin.log');
    expect(envFile.IPAMD_SOCKET_PATH).toBe('/var/run/aws-node/vpc-cni.sock');
    expect(() => loadConfig(envFile)).not.toThrow();
  });

  it('the conflist template names the same plugin log', () => {
    const conf = JSON.parse(readFileSync(join(ROOT, 'infra/ami/10-aws.conflist.template'), 'utf8'));
    expect(conf.plugins[0]).toMatchObject({
      ipamdSocket: '/var/run/aws-node/vpc-cni.sock',
      pluginLogFile: envFile.AWS_VPC_K8S_PLUGIN_LOG_FILE,
    });
  });
});
