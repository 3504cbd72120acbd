/**
 * User data for the test cluster's nodes (EKS-optimized Amazon Linux 2023, nodeadm): a NodeConfig
 * that joins the cluster, and a script that installs vpc-cni from the node bundle and lets
 * vpc-cni-bootstrap set the kubelet's maxPods from the calculator for the instance it runs on.
 */

export const MIME_BOUNDARY = '==VPCCNI==';
/**
 * A nodeadm NodeConfig drop-in: nodeadm-run.service merges /etc/eks/nodeadm.d/ over the user data after
 * cloud-init, so the kubelet gets maxPods and nodeadm sizes kubeReserved from the same number.
 */
export const NODEADM_DROPIN = '/etc/eks/nodeadm.d/20-vpc-cni.yaml';

export interface NodeUserDataOptions {
  clusterName: string;
  apiServerEndpoint: string;
  certificateAuthority: string;
  serviceCidr: string;
  region: string;
  /** s3://bucket/key of the node bundle (a zip of dist/ and infra/ami/). */
  bundleS3Url: string;
  /** ipamd settings the bootstrap hook reads (and ipamd would, run as a service). */
  ipamdEnv: Record<string, string>;
  /** Extra kubelet node labels, e.g. the zone's ENIConfig under custom networking. */
  nodeLabels: Record<string, string>;
}

function nodeConfig(o: NodeUserDataOptions): string {
  const labels = Object.entries(o.nodeLabels).map(([k, v]) => `${k}=${v}`);
  return [
    '---',
    'apiVersion: node.eks.aws/v1alpha1',
    'kind: NodeConfig',
    'spec:',
    '  cluster:',
    `    name: ${o.clusterName}`,
    `    apiServerEndpoint: ${o.apiServerEndpoint}`,
    `    certificateAuthority: ${o.certificateAuthority}`,
    `    cidr: ${o.serviceCidr}`,
    ...(labels.length > 0 ? ['  kubelet:', '    flags:', `      - --node-labels=${labels.join(',')}`] : []),
  ].join('\n');
}

function installScript(o: NodeUserDataOptions): string {
  const env = Object.entries(o.ipamdEnv).map(([k, v]) => `${k}=${v}`);
  return [
    '#!/bin/bash',
    '# vpc-cni: the plugin, its runtime and the calculator, then the kubelet max pods for this instance.',
    'set -euo pipefail',
    'dnf install -y nodejs20 unzip',
    `aws s3 cp --region ${o.region} '${o.bundleS3Url}' /tmp/vpc-cni-bundle.zip`,
    'rm -rf /tmp/vpc-cni && mkdir -p /tmp/vpc-cni && unzip -q /tmp/vpc-cni-bundle.zip -d /tmp/vpc-cni',
    'sh /tmp/vpc-cni/infra/ami/install.sh --dist /tmp/vpc-cni/dist --node "$(command -v node-20 || command -v node)"',
    "cat > /etc/vpc-cni/ipamd.env <<'VPCCNI_ENV'",
    ...env,
    'VPCCNI_ENV',
    `mkdir -p ${NODEADM_DROPIN.slice(0, NODEADM_DROPIN.lastIndexOf('/'))}`,
    `/usr/local/bin/vpc-cni-bootstrap --output nodeconfig > ${NODEADM_DROPIN}`,
    'rm -rf /tmp/vpc-cni /tmp/vpc-cni-bundle.zip',
  ].join('\n');
}

/** A MIME multi-part document: nodeadm takes the NodeConfig part, cloud-init runs the script. */
export function nodeUserData(o: NodeUserDataOptions): string {
  return [
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${MIME_BOUNDARY}"`,
    '',
    `--${MIME_BOUNDARY}`,
    'Content-Type: application/node.eks.aws',
    '',
    nodeConfig(o),
    '',
    `--${MIME_BOUNDARY}`,
    'Content-Type: text/x-shellscript; charset="us-ascii"',
    '',
    installScript(o),
    '',
    `--${MIME_BOUNDARY}--`,
    '',
  ].join('\n');
}

/** The parts of a document made by nodeUserData, by content type (for tests and debugging). */
export function userDataParts(doc: string): Record<string, string> {
  const parts: Record<string, string> = {};
  for (const chunk of doc.split(`--${MIME_BOUNDARY}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const [head, ...body] = chunk.replace(/^\n/, '').split('\n\n');
    const type = /Content-Type: ([^;\n]+)/.exec(head ?? '')?.[1];
    if (type) parts[type] = body.join('\n\n').replace(/\n$/, '');
  }
  return parts;
}
