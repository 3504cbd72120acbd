/**
 * Kubernetes API access for ipamd. Where a cluster exists (service account, or KUBECONFIG), the node
 * object gives max pods and names the ENIConfig, and the ENIConfig gives the custom-networking subnet
 * and security groups; without one, ipamd runs from its local configuration.
 *
 * After the start-up read, ClusterFollower (follow.ts) watches the node and its ENIConfig so changes
 * apply to the next ENI.
 *
 * RBAC needed: get/list/watch on nodes and on eniconfigs.crd.k8s.amazonaws.com (the chart grants them).
 */
import type { Logger } from '../log.js';
import { createK8sAccess, type K8sAccess } from './access.js';
import { detectClusterSource, type Env } from './detect.js';
import { readNodeContext } from './node-context.js';

export { createK8sAccess, type K8sAccess, K8sRequestError } from './access.js';
export { ClusterConfigError, type ClusterSource, detectClusterSource } from './detect.js';
export { ClusterFollower, type FollowedSettings, type FollowOptions } from './follow.js';
export { type NodeContext, readNodeContext, validateEniConfigObject } from './node-context.js';
export {
  annotatingHandler,
  POD_IPS_ANNOTATION,
  PodIpAnnotator,
  type PodRef,
  podOfAttachment,
} from './pod-annotator.js';

/** The API server named by the environment, or null without one. client-node loads on the first request. */
export function detectCluster(
  env: Env,
  opts: { requestTimeoutMs?: number; endpoint?: string | null } = {},
): K8sAccess | null {
  const source = detectClusterSource(env, { endpoint: opts.endpoint ?? null });
  return source ? createK8sAccess(source, opts) : null;
}

export interface ClusterOptions {
  nodeName: string;
  /** The instance's availability zone (IMDS): names the ENIConfig when the node carries no label. */
  availabilityZone: string;
  /** ENI_CONFIG_LABEL_DEF / ENI_CONFIG_ANNOTATION_DEF: the node label/annotation naming its ENIConfig. */
  eniConfigLabel: string;
  eniConfigAnnotation: string;
  /** Only custom networking needs the ENIConfig. */
  wantEniConfig: boolean;
  log: Logger;
  /** The API server; by default the one the environment names (service account or KUBECONFIG). */
  access?: K8sAccess;
  env?: Env;
}

export interface ClusterSettings {
  maxPods: number | null;
  eniConfigName: string | null;
  /** securityGroups is empty when the ENIConfig lists none: use the primary ENI's. */
  eniConfig: { subnet: string; securityGroups: string[] } | null;
  /** Cordoned at start (node.kubernetes.io/unschedulable:NoSchedule); absent when not. */
  unschedulable?: true;
}

/**
 * ipamd's start-up read of the cluster. Errors (no API server configured, node missing, ENIConfig
 * missing or malformed, API unreachable) are thrown: ipamd must not guess its max pods or put pods
 * in the wrong subnet.
 */
export async function readClusterSettings(o: ClusterOptions): Promise<ClusterSettings> {
  const access = o.access ?? detectCluster(o.env ?? process.env);
  if (!access)
    throw new Error('no Kubernetes API server: set KUBERNETES_SERVICE_HOST (in a pod) or KUBECONFIG');
  const started = Date.now();
  const ctx = await readNodeContext(access, {
    nodeName: o.nodeName,
    availabilityZone: o.availabilityZone,
    customNetworking: o.wantEniConfig,
    eniConfigLabel: o.eniConfigLabel,
    eniConfigAnnotation: o.eniConfigAnnotation,
  });
  const settings: ClusterSettings = {
    maxPods: ctx.maxPods ?? null,
    eniConfigName: ctx.eniConfigName ?? null,
    eniConfig: ctx.eniConfig ?? null,
    ...(ctx.unschedulable ? { unschedulable: true as const } : {}),
  };
  o.log.info(
    {
      server: access.server,
      node: o.nodeName,
      ...settings,
      eniConfigFrom: ctx.eniConfigNameSource ?? null,
      ms: Date.now() - started,
    },
    'node settings read from the Kubernetes API',
  );
  return settings;
}
