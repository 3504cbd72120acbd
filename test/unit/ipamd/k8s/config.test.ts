// How ipamd's configuration decides it runs in a cluster (then ipamd/k8s reads the node and its ENIConfig).
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../../ipamd/config.js';

const problems = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
    return '';
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
};

describe('cluster detection in the config', () => {
  it('is off without an API server, and custom networking then needs a local ENIConfig', () => {
    expect(loadConfig({}).cluster).toBeNull();
    expect(loadConfig({ MY_NODE_NAME: 'n' }).cluster).toBeNull();
    expect(problems({ AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true' })).toMatch(/needs ENI_CONFIG_FILE/);
  });

  it('is on in a pod or with KUBECONFIG, with the reference label/annotation keys by default', () => {
    for (const where of [
      { KUBERNETES_SERVICE_HOST: '10.100.0.1' },
      { KUBECONFIG: '/etc/kubernetes/kubelet.conf' },
    ]) {
      const c = loadConfig({ ...where, MY_NODE_NAME: 'node-a', AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true' });
      expect(c.cluster).toEqual({
        nodeName: 'node-a',
        eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
        eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
      });
      // The ENIConfig will come from the API server.
      expect(c.eniConfig).toBeNull();
    }
    const custom = loadConfig({
      KUBERNETES_SERVICE_HOST: '10.100.0.1',
      MY_NODE_NAME: 'node-a',
      ENI_CONFIG_LABEL_DEF: 'topology.kubernetes.io/zone',
    });
    expect(custom.cluster?.eniConfigLabel).toBe('topology.kubernetes.io/zone');
  });

  it('relists the watched node and ENIConfig every IPAMD_K8S_RESYNC_INTERVAL_SECONDS (300 by default)', () => {
    expect(loadConfig({}).k8sResyncIntervalSeconds).toBe(300);
    expect(loadConfig({ IPAMD_K8S_RESYNC_INTERVAL_SECONDS: '30' }).k8sResyncIntervalSeconds).toBe(30);
    expect(problems({ IPAMD_K8S_RESYNC_INTERVAL_SECONDS: '0' })).toMatch(
      /IPAMD_K8S_RESYNC_INTERVAL_SECONDS="0" must be a positive number/,
    );
  });
});
