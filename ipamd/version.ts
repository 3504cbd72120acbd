/** vpc-cni's release (package.json's version; test/unit/ipamd/metrics-reference.test.ts keeps them equal). */
export const VPC_CNI_VERSION = '0.1.0';
