import { sha1Hex } from './sha1.js';

/**
 * The host-side veth name the reference uses: prefix + first 11 hex digits of
 * sha1("<namespace>.<pod name>"), so operators can find a pod's veth from its name. Outside
 * Kubernetes (no pod name in CNI_ARGS) the container ID and interface name stand in.
 */
export function hostVethName(
  prefix: string,
  pod: { podNamespace?: string; podName?: string; containerId: string; ifName: string },
): string {
  const key =
    pod.podNamespace && pod.podName
      ? `${pod.podNamespace}.${pod.podName}`
      : `${pod.containerId}.${pod.ifName}`;
  return prefix + sha1Hex(key).slice(0, 11);
}
