// The AWS VPC CNI v1.23 settings issue 12 lists, each with the reference's name, default and meaning,
// read (as every setting) by ipamd/config.ts. The behaviour each one switches is tested where it acts
// (hostnet, pool, k8s, logs, introspection); here: the name, the default, the accepted values.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../ipamd/config.js';
import { UNSUPPORTED_REFERENCE_SETTINGS, unsupportedSettingsIn } from '../../../ipamd/reference-settings.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('reference settings (v1.23)', () => {
  it('AWS_VPC_CNI_NODE_PORT_SUPPORT is the name; AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT stays an alias', () => {
    expect(loadConfig({}).nodePortSupport).toBe(true);
    expect(loadConfig({ AWS_VPC_CNI_NODE_PORT_SUPPORT: 'false' }).nodePortSupport).toBe(false);
    expect(loadConfig({ AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT: 'false' }).nodePortSupport).toBe(false);
    expect(
      loadConfig({ AWS_VPC_CNI_NODE_PORT_SUPPORT: 'false', AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT: 'false' })
        .nodePortSupport,
    ).toBe(false);
    expect(
      problems({ AWS_VPC_CNI_NODE_PORT_SUPPORT: 'true', AWS_VPC_K8S_CNI_NODE_PORT_SUPPORT: 'false' }),
    ).toEqual([expect.stringMatching(/disagree; set only AWS_VPC_CNI_NODE_PORT_SUPPORT/)]);
  });

  it('AWS_VPC_K8S_CNI_CONNMARK: 0x80 by default; decimal, hex or octal; non-zero 32 bits', () => {
    expect(loadConfig({}).connmark).toBe(0x80);
    expect(loadConfig({ AWS_VPC_K8S_CNI_CONNMARK: '0x4000' }).connmark).toBe(0x4000);
    expect(loadConfig({ AWS_VPC_K8S_CNI_CONNMARK: '256' }).connmark).toBe(256);
    expect(loadConfig({ AWS_VPC_K8S_CNI_CONNMARK: '0200' }).connmark).toBe(128);
    for (const bad of ['0', '0x100000000', 'mark', '-1']) {
      expect(problems({ AWS_VPC_K8S_CNI_CONNMARK: bad }), bad).toEqual([
        expect.stringMatching(/AWS_VPC_K8S_CNI_CONNMARK=.* must be a non-zero 32-bit mark/),
      ]);
    }
  });

  it('AWS_EXTERNAL_SERVICE_CIDRS: empty by default, a comma list of IPv4 CIDRs', () => {
    expect(loadConfig({}).externalServiceCidrs).toEqual([]);
    expect(
      loadConfig({ AWS_EXTERNAL_SERVICE_CIDRS: '192.0.2.0/24, 203.0.113.7/32' }).externalServiceCidrs,
    ).toEqual(['192.0.2.0/24', '203.0.113.7/32']);
    expect(problems({ AWS_EXTERNAL_SERVICE_CIDRS: '192.0.2.0/24,fd00::/8' })).toEqual([
      expect.stringMatching(/AWS_EXTERNAL_SERVICE_CIDRS: "fd00::\/8" is not an IPv4 CIDR/),
    ]);
  });

  it('CLUSTER_ENDPOINT: unset by default; an https URL of the API server; with MY_NODE_NAME it is a cluster', () => {
    expect(loadConfig({}).clusterEndpoint).toBeNull();
    const c = loadConfig({
      CLUSTER_ENDPOINT: 'https://ABC.gr7.us-west-2.eks.amazonaws.com/',
      MY_NODE_NAME: 'n1',
    });
    expect(c.clusterEndpoint).toBe('https://abc.gr7.us-west-2.eks.amazonaws.com');
    expect(c.cluster?.nodeName).toBe('n1');
    for (const bad of ['http://api:443', 'api.example.com', 'https://u:p@api', 'https://api/path']) {
      expect(problems({ CLUSTER_ENDPOINT: bad }), bad).toEqual([
        expect.stringMatching(/CLUSTER_ENDPOINT=.*https URL/),
      ]);
    }
  });

  it('ANNOTATE_POD_IP: false by default', () => {
    expect(loadConfig({}).annotatePodIp).toBe(false);
    expect(loadConfig({ ANNOTATE_POD_IP: 'true' }).annotatePodIp).toBe(true);
  });

  it('ENABLE_IMDS_ONLY_MODE: false by default; true also disables provisioning and leaked-ENI cleanup', () => {
    const d = loadConfig({});
    expect([d.imdsOnly, d.disableProvisioning, d.disableLeakedEniCleanup]).toEqual([false, false, false]);
    const c = loadConfig({ ENABLE_IMDS_ONLY_MODE: 'true', DISABLE_NETWORK_RESOURCE_PROVISIONING: 'false' });
    expect([c.imdsOnly, c.disableProvisioning, c.disableLeakedEniCleanup]).toEqual([true, true, true]);
  });

  it("HTTP_TIMEOUT: 10 s by default; below the reference's 10 s floor it is 10, with a note", () => {
    expect(loadConfig({}).httpTimeoutSeconds).toBe(10);
    expect(loadConfig({ HTTP_TIMEOUT: '30' }).httpTimeoutSeconds).toBe(30);
    const low = loadConfig({ HTTP_TIMEOUT: '3' });
    expect(low.httpTimeoutSeconds).toBe(10);
    expect(low.notes).toEqual([expect.stringMatching(/HTTP_TIMEOUT=3 is below the reference's 10 s floor/)]);
    expect(problems({ HTTP_TIMEOUT: '10s' })).toEqual(['HTTP_TIMEOUT="10s" is not a whole number']);
  });

  it('AWS_MANAGE_ENIS_NON_SCHEDULABLE: false by default', () => {
    expect(loadConfig({}).manageEnisNonSchedulable).toBe(false);
    expect(loadConfig({ AWS_MANAGE_ENIS_NON_SCHEDULABLE: 'true' }).manageEnisNonSchedulable).toBe(true);
  });

  it('MANAGE_UNTAGGED_ENI: true by default', () => {
    expect(loadConfig({}).manageUntaggedEnis).toBe(true);
    expect(loadConfig({ MANAGE_UNTAGGED_ENI: 'false' }).manageUntaggedEnis).toBe(false);
  });

  it('AWS_VPC_K8S_CNI_LOG_FILE: the reference path by default; stdout, stderr ("" too) or an absolute file', () => {
    expect(loadConfig({}).logFile).toBe('/host/var/log/aws-routed-eni/ipamd.log');
    expect(loadConfig({ AWS_VPC_K8S_CNI_LOG_FILE: 'stdout' }).logFile).toBe('stdout');
    expect(loadConfig({ AWS_VPC_K8S_CNI_LOG_FILE: 'STDERR' }).logFile).toBe('stderr');
    expect(loadConfig({ AWS_VPC_K8S_CNI_LOG_FILE: '' }).logFile).toBe('stderr');
    expect(loadConfig({ AWS_VPC_K8S_CNI_LOG_FILE: '/var/log/x/ipamd.log' }).logFile).toBe(
      '/var/log/x/ipamd.log',
    );
    expect(problems({ AWS_VPC_K8S_CNI_LOG_FILE: 'ipamd.log' })).toEqual([
      expect.stringMatching(/must be stdout, stderr or an absolute file path/),
    ]);
  });

  it('AWS_VPC_K8S_PLUGIN_LOG_FILE / _LEVEL: the reference path and DEBUG by default; stderr, never stdout', () => {
    const d = loadConfig({});
    expect([d.pluginLogFile, d.pluginLogLevel, d.pluginLogDir]).toEqual([
      '/var/log/aws-routed-eni/plugin.log',
      'debug',
      '/var/log/aws-routed-eni',
    ]);
    expect(loadConfig({ AWS_VPC_K8S_PLUGIN_LOG_FILE: 'stderr' }).pluginLogFile).toBe('stderr');
    expect(loadConfig({ AWS_VPC_K8S_PLUGIN_LOG_FILE: '' }).pluginLogFile).toBe('stderr');
    expect(loadConfig({ AWS_VPC_K8S_PLUGIN_LOG_LEVEL: 'WARN' }).pluginLogLevel).toBe('warn');
    expect(problems({ AWS_VPC_K8S_PLUGIN_LOG_FILE: 'stdout' })).toEqual([
      expect.stringMatching(/AWS_VPC_K8S_PLUGIN_LOG_FILE="stdout" must be stderr or an absolute file path/),
    ]);
    expect(problems({ AWS_VPC_K8S_PLUGIN_LOG_LEVEL: 'loud' })).toEqual([
      expect.stringMatching(
        /AWS_VPC_K8S_PLUGIN_LOG_LEVEL="loud" must be one of debug, info, warn, error, fatal/,
      ),
    ]);
    // The file must lie in the one directory ipamd writes plugin logs in.
    expect(problems({ AWS_VPC_K8S_PLUGIN_LOG_FILE: '/tmp/plugin.log' })).toEqual([
      expect.stringMatching(/must lie in \/var\/log\/aws-routed-eni \(IPAMD_PLUGIN_LOG_DIR\)/),
    ]);
    const moved = loadConfig({
      AWS_VPC_K8S_PLUGIN_LOG_FILE: '/logs/cni/p.log',
      IPAMD_PLUGIN_LOG_DIR: '/logs/cni/',
    });
    expect([moved.pluginLogFile, moved.pluginLogDir]).toEqual(['/logs/cni/p.log', '/logs/cni']);
  });

  it('INTROSPECTION_BIND_ADDRESS: host:port or unix:<absolute path>', () => {
    expect(
      loadConfig({ INTROSPECTION_BIND_ADDRESS: 'unix:/run/aws-node/introspect.sock' }).introspectionBind,
    ).toBe('unix:/run/aws-node/introspect.sock');
    expect(problems({ INTROSPECTION_BIND_ADDRESS: 'unix:relative.sock' })).toEqual([
      expect.stringMatching(/unix: needs an absolute socket path/),
    ]);
  });

  it('leaked-ENI cleanup: hourly, a random start delay up to 300 s, this node only unless scope=cluster', () => {
    const d = loadConfig({});
    expect([d.leakedEniIntervalSeconds, d.leakedEniStartDelayMaxSeconds, d.leakedEniScope]).toEqual([
      3600,
      300,
      'node',
    ]);
    expect(loadConfig({ IPAMD_LEAKED_ENI_SCOPE: 'cluster', CLUSTER_NAME: 'prod' }).leakedEniScope).toBe(
      'cluster',
    );
    expect(problems({ IPAMD_LEAKED_ENI_SCOPE: 'cluster' })).toEqual([
      expect.stringMatching(/needs CLUSTER_NAME/),
    ]);
    expect(problems({ IPAMD_LEAKED_ENI_SCOPE: 'vpc' })).toEqual([
      expect.stringMatching(/must be one of node, cluster/),
    ]);
  });
});

describe('reference settings vpc-cni does not implement', () => {
  it('names each one set to a value that asks for something, and none at the values a migrated env carries', () => {
    // What the reference chart's env has by default: nothing to warn about.
    const migrated = {
      ENABLE_POD_ENI: 'false',
      ENABLE_IPv4: 'true',
      ENABLE_IPv6: 'false',
      NETWORK_POLICY_ENFORCING_MODE: 'standard',
      ENABLE_MULTI_NIC: 'false',
      VPC_CNI_VERSION: 'v1.23.1',
    };
    expect(loadConfig(migrated).unsupportedReferenceSettings).toEqual([]);
    expect(
      loadConfig({
        ...migrated,
        ENABLE_POD_ENI: 'true',
        ENABLE_IPv6: 'TRUE',
        ENABLE_BANDWIDTH_PLUGIN: 'true',
      }).unsupportedReferenceSettings,
    ).toEqual(['ENABLE_POD_ENI', 'ENABLE_BANDWIDTH_PLUGIN', 'ENABLE_IPv6']);
  });

  it('every row has a name and a harmless value list; any other value of each is named', () => {
    for (const s of UNSUPPORTED_REFERENCE_SETTINGS) {
      expect(unsupportedSettingsIn({ [s.name]: 'surely-not-harmless' }), s.name).toEqual([s.name]);
      for (const v of s.harmless)
        expect(unsupportedSettingsIn({ [s.name]: v }), `${s.name}=${v}`).toEqual([]);
    }
  });
});
