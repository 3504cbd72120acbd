/**
 * The kubelet's side of pod networking, through containerd's CRI as the kubelet drives it:
 * RunPodSandbox with the pod's metadata (name, namespace, uid; containerd turns them into CNI_ARGS
 * K8S_POD_NAMESPACE/NAME/INFRA_CONTAINER_ID/UID), its hostPorts as port mappings (containerd hands
 * them to the conflist's portMappings capability), a per-pod cgroup parent and the pod-level Linux
 * security context; StopPodSandbox (CNI DEL, sandbox killed) and RemovePodSandbox, each retried by
 * the kubelet until it succeeds. Nothing here looks at the network: tests do.
 */
import { randomUUID } from 'node:crypto';
import type { CriClient } from './cri-api.js';

export interface PodSpec {
  name: string;
  namespace?: string;
  uid?: string;
  /** hostPort mappings: containerPort in the pod, hostPort on the node. */
  ports?: { containerPort: number; hostPort: number; protocol?: 'TCP' | 'UDP' | 'SCTP'; hostIp?: string }[];
}

export interface Pod {
  id: string;
  name: string;
  namespace: string;
  uid: string;
}

export interface SandboxInfo {
  state: string;
  ip: string;
  /** The pod's network namespace as containerd named it (a node path under /var/run/netns). */
  netnsPath: string | undefined;
  /** The sandbox's init process (host PID), to enter the pod's namespaces. */
  pid: number;
  /** What containerd cached of the CNI ADD result (used as prevResult for DEL). */
  cniResult: unknown;
  runtimeSpec: Record<string, unknown>;
}

/**
 * A protobuf map as the descriptor-loaded API takes it: loaded from descriptors (not .proto text),
 * map<K,V> fields stay what the wire has, repeated {key, value} entries.
 */
export function mapField(m: Record<string, string>): { key: string; value: string }[] {
  return Object.entries(m).map(([key, value]) => ({ key, value }));
}

export class Kubelet {
  constructor(
    private readonly cri: CriClient,
    /** cgroupfs parent of every pod's cgroup (the kubelet's /kubepods), removed with the node. */
    private readonly cgroupRoot: string,
  ) {}

  /** The PodSandboxConfig the kubelet generates for a pod (kuberuntime's generatePodSandboxConfig). */
  sandboxConfig(spec: PodSpec, uid: string): Record<string, unknown> {
    const namespace = spec.namespace ?? 'default';
    return {
      metadata: { name: spec.name, namespace, uid, attempt: 0 },
      hostname: spec.name,
      labels: mapField({
        'io.kubernetes.pod.name': spec.name,
        'io.kubernetes.pod.namespace': namespace,
        'io.kubernetes.pod.uid': uid,
      }),
      annotations: mapField({ 'kubernetes.io/config.source': 'api' }),
      port_mappings: (spec.ports ?? []).map((p) => ({
        protocol: p.protocol ?? 'TCP',
        container_port: p.containerPort,
        host_port: p.hostPort,
        host_ip: p.hostIp ?? '',
      })),
      linux: {
        cgroup_parent: `${this.cgroupRoot}/besteffort/pod${uid}`,
        security_context: {
          namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD' },
          privileged: false,
          seccomp: { profile_type: 'RuntimeDefault' },
        },
      },
    };
  }

  /** RunPodSandbox once; rejects with containerd's error (which carries the CNI plugin's). */
  async runPod(spec: PodSpec): Promise<Pod> {
    const uid = spec.uid ?? randomUUID();
    const res = await this.cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', {
      config: this.sandboxConfig(spec, uid),
      runtime_handler: '',
    });
    return { id: res.pod_sandbox_id, name: spec.name, namespace: spec.namespace ?? 'default', uid };
  }

  /**
   * RunPodSandbox as the kubelet's pod workers do it: a failed attempt is retried (after the
   * kubelet's own clean-up of the failed sandbox, which containerd does itself) until `timeoutMs`.
   * Returns the pod and every error seen before it started.
   */
  async runPodRetrying(
    spec: PodSpec,
    timeoutMs = 60_000,
    backoffMs = 1_000,
  ): Promise<{ pod: Pod; errors: string[] }> {
    const deadline = Date.now() + timeoutMs;
    const errors: string[] = [];
    const uid = spec.uid ?? randomUUID();
    for (;;) {
      try {
        return { pod: await this.runPod({ ...spec, uid }), errors };
      } catch (err) {
        errors.push((err as Error).message);
        if (Date.now() > deadline) throw new Error(`pod ${spec.name} did not start: ${errors.at(-1)}`);
        await new Promise((r) => setTimeout(r, backoffMs));
      }
    }
  }

  stopPod(id: string, timeoutMs?: number): Promise<unknown> {
    return this.cri.call('StopPodSandbox', { pod_sandbox_id: id }, timeoutMs);
  }

  removePod(id: string, timeoutMs?: number): Promise<unknown> {
    return this.cri.call('RemovePodSandbox', { pod_sandbox_id: id }, timeoutMs);
  }

  async status(id: string): Promise<SandboxInfo> {
    const res = await this.cri.call<{
      status: { state: string; network: { ip: string } | null };
      info: { key: string; value: string }[];
    }>('PodSandboxStatus', { pod_sandbox_id: id, verbose: true });
    const info = JSON.parse(res.info.find((e) => e.key === 'info')?.value ?? '{}') as {
      pid: number;
      runtimeSpec: { linux?: { namespaces?: { type: string; path?: string }[] } };
      cniResult: unknown;
    };
    const netns = info.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    return {
      state: res.status.state,
      ip: res.status.network?.ip ?? '',
      netnsPath: netns,
      pid: info.pid,
      cniResult: info.cniResult,
      runtimeSpec: info.runtimeSpec as Record<string, unknown>,
    };
  }

  async list(): Promise<{ id: string; state: string; metadata: { name: string } }[]> {
    const res = await this.cri.call<{ items: { id: string; state: string; metadata: { name: string } }[] }>(
      'ListPodSandbox',
      {},
    );
    return res.items;
  }

  /** The kubelet's last word on every pod: stop and remove whatever is left (errors collected). */
  async removeAll(timeoutMs = 10_000): Promise<string[]> {
    const errors: string[] = [];
    const items = await this.list().catch(() => []);
    await Promise.all(
      items.map(async (item) => {
        await this.stopPod(item.id, timeoutMs).catch((e: Error) => errors.push(e.message));
        await this.removePod(item.id, timeoutMs).catch((e: Error) => errors.push(e.message));
      }),
    );
    return errors;
  }
}
