/**
 * Where the Kubernetes API server is, decided from the environment alone (no client library loaded):
 * in a pod, the service account (KUBERNETES_SERVICE_HOST/PORT, or CLUSTER_ENDPOINT, and its token and CA files); elsewhere,
 * a kubeconfig named by KUBECONFIG; with neither, no cluster and ipamd runs from its local configuration.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export type Env = Record<string, string | undefined>;

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type ClusterSource =
  | { kind: 'in-cluster'; server: string; tokenFile: string; caFile: string }
  | { kind: 'kubeconfig'; path: string };

/** Thrown when the environment names a cluster but names it wrongly. */
export class ClusterConfigError extends Error {
  override name = 'ClusterConfigError';
}

function serviceAccount(env: Env, why: string): { tokenFile: string; caFile: string } {
  const dir = env.K8S_SERVICE_ACCOUNT_DIR ?? DEFAULT_SERVICE_ACCOUNT_DIR;
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  for (const f of [tokenFile, caFile]) {
    if (!existsSync(f)) {
      throw new ClusterConfigError(
        `${why} but ${f} does not exist: mount the pod's service account token (automountServiceAccountToken) or unset it`,
      );
    }
  }
  return { tokenFile, caFile };
}

function inCluster(env: Env, host: string): ClusterSource {
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new ClusterConfigError(`KUBERNETES_SERVICE_PORT=${JSON.stringify(port)} is not a TCP port`);
  }
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) {
    throw new ClusterConfigError(
      `KUBERNETES_SERVICE_HOST=${JSON.stringify(host)} is not a host name or address`,
    );
  }
  const { tokenFile, caFile } = serviceAccount(env, 'KUBERNETES_SERVICE_HOST is set');
  // Always HTTPS verified by the service account's CA: the token must never travel in clear text.
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return { kind: 'in-cluster', server: `https://${h}:${port}`, tokenFile, caFile };
}

/**
 * The API server ipamd should talk to, or null when there is none. Throws ClusterConfigError when
 * the environment points at one that cannot work (missing kubeconfig, bad port, no token mounted).
 */
export function detectClusterSource(env: Env, opts: { endpoint?: string | null } = {}): ClusterSource | null {
  // CLUSTER_ENDPOINT (config.ts validated it: https://host[:port]): the API server itself with the pod's
  // service account, not the service VIP that only works once kube-proxy has programmed the node.
  if (opts.endpoint) {
    return { kind: 'in-cluster', server: opts.endpoint, ...serviceAccount(env, 'CLUSTER_ENDPOINT is set') };
  }
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  if (host) return inCluster(env, host);
  const kubeconfig = env.KUBECONFIG?.trim();
  if (kubeconfig) {
    // KUBECONFIG may list several files (path-list); ipamd reads the first, as most tools do.
    const path = kubeconfig.split(':').find((p) => p !== '') ?? '';
    if (!existsSync(path)) {
      throw new ClusterConfigError(`KUBECONFIG=${kubeconfig}: ${path} does not exist`);
    }
    return { kind: 'kubeconfig', path };
  }
  return null;
}
