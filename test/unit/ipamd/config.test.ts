import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../ipamd/config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('uses the reference defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c.mode).toBe('ip');
    expect(c.warmEniTarget).toBe(1);
    expect(c.warmIpTarget).toBe(0);
    expect(c.minimumIpTarget).toBe(0);
    expect(c.warmPrefixTarget).toBe(0);
    expect(c.ipCooldownSeconds).toBe(30);
    expect(c.eniMtu).toBe(9001);
    expect(c.podMtu).toBe(9001);
    expect(c.vethPrefix).toBe('eni');
    expect(c.snat).toEqual({ enabled: true, randomize: 'prng', excludeCidrs: [] });
    expect(c.socketPath).toBe('/var/run/aws-node/vpc-cni.sock');
    expect(c.socketMode).toBe(0o600);
    expect(c.checkpointPath).toBe('/var/run/aws-node/ipam.json');
    expect(c.cniConfDir).toBe('/etc/cni/net.d');
    expect(c.introspectionBind).toBe('127.0.0.1:61679');
    // Loopback: no pod, on this node or another, can read the metrics unless the operator opens them.
    expect(c.metricsBind).toBe('127.0.0.1:61678');
    expect(c.blockPodImds).toBe(true);
    expect(c.imdsEndpoint).toBe('http://169.254.169.254');
    expect(c.reconcileIntervalSeconds).toBe(60);
    expect(c.shrinkIntervalSeconds).toBe(30);
    expect(c.leakedEniAgeSeconds).toBe(300);
    expect(c.subnetDiscovery).toBe(true);
    expect(c.writeCniConflist).toBe(true);
    expect(c.maxPods).toBeNull();
    expect(c.maxEni).toBeNull();
  });

  it('defaults WARM_PREFIX_TARGET to 1 in prefix mode, and to 0 when IP targets are set', () => {
    expect(loadConfig({ ENABLE_PREFIX_DELEGATION: 'true' }).warmPrefixTarget).toBe(1);
    const c = loadConfig({ ENABLE_PREFIX_DELEGATION: 'TRUE', WARM_IP_TARGET: '5' });
    expect(c.mode).toBe('prefix');
    expect(c.warmPrefixTarget).toBe(0);
    expect(c.warmIpTarget).toBe(5);
  });

  it('IPAMD_BLOCK_POD_IMDS turns the IMDS block off, and is a boolean', () => {
    expect(loadConfig({ IPAMD_BLOCK_POD_IMDS: 'false' }).blockPodImds).toBe(false);
    expect(problems({ IPAMD_BLOCK_POD_IMDS: 'off' })).toEqual([
      'IPAMD_BLOCK_POD_IMDS="off" is not a boolean; use true or false',
    ]);
  });

  it('parses booleans one way: true/false/1/0 in any case', () => {
    expect(loadConfig({ AWS_VPC_K8S_CNI_EXTERNALSNAT: '1' }).snat.enabled).toBe(false);
    expect(loadConfig({ AWS_VPC_K8S_CNI_EXTERNALSNAT: 'False' }).snat.enabled).toBe(true);
    expect(problems({ AWS_VPC_K8S_CNI_EXTERNALSNAT: 'yes' })).toEqual([
      'AWS_VPC_K8S_CNI_EXTERNALSNAT="yes" is not a boolean; use true or false',
    ]);
  });

  it('reports every bad value together, one message each', () => {
    const p = problems({
      WARM_IP_TARGET: 'abc',
      MINIMUM_IP_TARGET: '-1',
      AWS_VPC_ENI_MTU: '10000',
      AWS_VPC_K8S_CNI_RANDOMIZESNAT: 'sometimes',
      AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: '10.0.0.0/8, 300.1.1.1/8',
      ADDITIONAL_ENI_TAGS: '{"node.k8s.amazonaws.com/instance_id":"x"}',
      AWS_VPC_K8S_CNI_VETHPREFIX: 'eth',
      IPAMD_SOCKET_PATH: 'relative/sock',
      INTROSPECTION_BIND_ADDRESS: 'nohost',
    });
    expect(p).toHaveLength(9);
    expect(p).toContain('WARM_IP_TARGET="abc" is not a whole number');
    expect(p).toContain('MINIMUM_IP_TARGET=-1 is out of range; it must be at least 0');
    expect(p).toContain('AWS_VPC_ENI_MTU=10000 is out of range; it must be between 576 and 9001');
    expect(p.join('\n')).toContain('"300.1.1.1/8" is not an IPv4 CIDR');
    expect(p.join('\n')).toContain('reserved for ipamd or AWS');
    expect(p.join('\n')).toContain('IPAMD_SOCKET_PATH="relative/sock" must be an absolute path');
  });

  it('rejects settings that would leave the pool empty', () => {
    expect(problems({ WARM_ENI_TARGET: '0' })[0]).toMatch(/keep the pool empty/);
    expect(problems({ ENABLE_PREFIX_DELEGATION: 'true', WARM_PREFIX_TARGET: '0' })[0]).toMatch(
      /needs WARM_PREFIX_TARGET >= 1/,
    );
    expect(loadConfig({ WARM_ENI_TARGET: '0', MINIMUM_IP_TARGET: '3' }).minimumIpTarget).toBe(3);
  });

  it('POD_MTU defaults to the ENI MTU', () => {
    expect(loadConfig({ AWS_VPC_ENI_MTU: '1500' }).podMtu).toBe(1500);
    expect(loadConfig({ AWS_VPC_ENI_MTU: '1500', POD_MTU: '1400' }).podMtu).toBe(1400);
  });

  it('custom networking takes the ENIConfig from env or file, and requires it', () => {
    expect(problems({ AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true' })[0]).toMatch(/needs ENI_CONFIG_FILE/);
    const c = loadConfig({
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      ENI_CONFIG_SUBNET: 'subnet-0abc',
      ENI_CONFIG_SECURITY_GROUPS: 'sg-1, sg-2',
    });
    expect(c.eniConfig).toEqual({ subnet: 'subnet-0abc', securityGroups: ['sg-1', 'sg-2'] });
    const dir = mkdtempSync(join(tmpdir(), 'ipamd-cfg-'));
    const file = join(dir, 'eniconfig.yaml');
    writeFileSync(
      file,
      'apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata: {name: us-west-2a}\nspec:\n  subnet: subnet-0def\n  securityGroups: [sg-0aa]\n',
    );
    const f = loadConfig({ AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true', ENI_CONFIG_FILE: file });
    expect(f.eniConfig).toEqual({ subnet: 'subnet-0def', securityGroups: ['sg-0aa'] });
    writeFileSync(file, 'spec:\n  subnet: net-1\n  securityGroups: []\n');
    const p = problems({ AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true', ENI_CONFIG_FILE: file });
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/"net-1" is not a subnet id/);
  });

  it('makes every path and address configurable, and servers disableable', () => {
    const c = loadConfig({
      IPAMD_SOCKET_PATH: '/tmp/n1/ipamd.sock',
      IPAMD_SOCKET_MODE: '0660',
      IPAMD_CHECKPOINT_PATH: '/tmp/n1/ipam.json',
      CNI_CONF_DIR: '/tmp/n1/net.d',
      INTROSPECTION_BIND_ADDRESS: '127.0.0.1:0',
      DISABLE_METRICS: 'true',
      AWS_EC2_ENDPOINT: 'http://127.0.0.1:4566/',
      MAX_PODS: '17',
      MAX_ENI: '2',
    });
    expect(c.socketPath).toBe('/tmp/n1/ipamd.sock');
    expect(c.socketMode).toBe(0o660);
    expect(c.metricsBind).toBeNull();
    expect(c.introspectionBind).toBe('127.0.0.1:0');
    expect(c.ec2Endpoint).toBe('http://127.0.0.1:4566');
    expect(c.maxPods).toBe(17);
    expect(c.maxEni).toBe(2);
  });

  it('takes the EC2 endpoint from AWS_EC2_ENDPOINT, else the SDK variables; FIPS only without one', () => {
    const sdk = {
      AWS_ENDPOINT_URL_EC2: 'https://ec2.vpce.example:443',
      AWS_ENDPOINT_URL: 'https://all.example',
    };
    expect(loadConfig({ ...sdk, AWS_EC2_ENDPOINT: 'https://mine.example' }).ec2Endpoint).toBe(
      'https://mine.example',
    );
    expect(loadConfig(sdk).ec2Endpoint).toBe('https://ec2.vpce.example:443');
    expect(loadConfig({ AWS_ENDPOINT_URL: 'https://all.example' }).ec2Endpoint).toBe('https://all.example');
    expect(loadConfig({}).ec2Endpoint).toBeNull();
    expect(loadConfig({ AWS_USE_FIPS_ENDPOINT: 'true' }).ec2UseFips).toBe(true);
    expect(() => loadConfig({ AWS_ENDPOINT_URL_EC2: 'not a url' })).toThrow(/AWS_ENDPOINT_URL_EC2/);
  });
});

describe('loadConfig (cluster)', () => {
  it('accepts custom networking without a local ENIConfig only when a cluster is reachable', () => {
    const c = loadConfig({
      AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true',
      KUBERNETES_SERVICE_HOST: '10.100.0.1',
      MY_NODE_NAME: 'node-a',
    });
    expect(c.cluster).toEqual({
      nodeName: 'node-a',
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
    });
    expect(c.eniConfig).toBeNull();
    expect(loadConfig({ KUBERNETES_SERVICE_HOST: '10.100.0.1' }).cluster).toBeNull();
    expect(() => loadConfig({ AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: 'true', MY_NODE_NAME: 'n' })).toThrow(
      /needs ENI_CONFIG_FILE/,
    );
  });
});
