/**
 * The AWS VPC CNI v1.23 settings vpc-cni does not implement, with the value that asks for nothing (a
 * migrated aws-node env carries most of them at that value). ipamd/config.ts names every one a user set
 * to anything else in one warning line at start, so a setting that silently did nothing before is said.
 * Each row's meaning: docs/migration.md.
 */
export interface UnsupportedSetting {
  name: string;
  /** Values that ask for nothing vpc-cni lacks (compared case-insensitively); empty: any value asks. */
  harmless: readonly string[];
}

const OFF = ['false', '0'];

export const UNSUPPORTED_REFERENCE_SETTINGS: readonly UnsupportedSetting[] = [
  { name: 'ENABLE_POD_ENI', harmless: OFF },
  { name: 'POD_SECURITY_GROUP_ENFORCING_MODE', harmless: ['strict', 'standard'] },
  { name: 'DISABLE_TCP_EARLY_DEMUX', harmless: OFF },
  { name: 'ENABLE_BANDWIDTH_PLUGIN', harmless: OFF },
  { name: 'ENABLE_IPv4', harmless: ['true', '1'] },
  { name: 'ENABLE_IPv6', harmless: OFF },
  { name: 'ENABLE_V6_EGRESS', harmless: OFF },
  { name: 'ENABLE_V4_EGRESS', harmless: ['true', '1'] },
  { name: 'DISABLE_POD_V6', harmless: OFF },
  { name: 'NETWORK_POLICY_ENFORCING_MODE', harmless: ['standard'] },
  { name: 'ENABLE_MULTI_NIC', harmless: OFF },
  { name: 'ENABLE_NFTABLES', harmless: OFF },
  { name: 'AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER', harmless: ['true', 'false', '1', '0'] },
  { name: 'HOST_CNI_BIN_PATH', harmless: ['/host/opt/cni/bin'] },
  { name: 'HOST_CNI_CONFDIR_PATH', harmless: ['/host/etc/cni/net.d'] },
  { name: 'AWS_VPC_K8S_CNI_BACKING_STORE', harmless: ['/var/run/aws-node/ipam.json'] },
];

/** Names of the unsupported settings `env` sets to a value that asks for something. */
export function unsupportedSettingsIn(env: Record<string, string | undefined>): string[] {
  return UNSUPPORTED_REFERENCE_SETTINGS.filter((s) => {
    const v = env[s.name]?.trim();
    return v !== undefined && v !== '' && !s.harmless.includes(v.toLowerCase());
  }).map((s) => s.name);
}
