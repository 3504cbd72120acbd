/**
 * Runbook: pods on a real kubelet node. Two local-VPC instances are booted as kubelet nodes
 * (test/support/node): Debian's containerd in the instance's network namespace and the node's mount
 * namespace, the aws-node pod from the RENDERED chart under runc (init container, then ipamd with the
 * chart's user, capabilities, read-only root, hostPath mounts and propagation), and pods started
 * and stopped through containerd's CRI exactly as the kubelet asks for them.
 */
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, eventually, podGet, podPing } from '../../support/node/cluster.js';
import { traceExecs } from '../../support/node/cni-trace.js';
import { mapField } from '../../support/node/kubelet.js';
import type { KubeletNode } from '../../support/node/kubelet-node.js';
import {
  containerSpec,
  KUBELET_MASKED_PATHS,
  KUBELET_READONLY_PATHS,
  type OciSpec,
} from '../../support/node/oci.js';
import { SANDBOX_IMAGE } from '../../support/node/sandbox-image.js';

const SOCKET_GID = 2345;
let cluster: Cluster;
let n1: KubeletNode;
let n2: KubeletNode;

/** The pod's interfaces and rules on the node that belong to `ip` (routes to it, its policy rules). */
async function nodeStateFor(node: KubeletNode, ip: string) {
  const rules = JSON.parse(await node.host.exec('ip', ['-j', 'rule', 'show'])) as {
    src?: string;
    dst?: string;
  }[];
  const routes = JSON.parse(await node.host.exec('ip', ['-j', 'route', 'show', 'table', 'main'])) as {
    dst: string;
    dev: string;
  }[];
  return {
    rules: rules.filter((r) => r.src === ip || r.dst === ip),
    routes: routes.filter((r) => r.dst === ip),
  };
}

async function hostVeths(node: KubeletNode): Promise<string[]> {
  const links = JSON.parse(await node.host.exec('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => n.startsWith('eni'));
}

function allocationsOf(node: KubeletNode, podId: string) {
  return node.checkpoint().allocations.filter((a) => a.containerId === podId);
}

describe('pods through CRI on a kubelet node with ipamd as the chart runs it', () => {
  beforeAll(async () => {
    // The socket is given to a group (as for a probe running as non-root): the chart must grant CHOWN.
    cluster = await Cluster.start({ nodes: 2, values: { env: { IPAMD_SOCKET_GROUP: String(SOCKET_GID) } } });
    [n1, n2] = cluster.nodes as [KubeletNode, KubeletNode];
  }, 180_000);

  afterAll(async () => {
    await cluster?.destroy();
  }, 120_000);

  // Each step starts from a node without pods, whatever the step before it left.
  afterEach(async () => {
    for (const node of cluster?.nodes ?? []) await node.kubelet.removeAll();
  });

  it("runs ipamd's container with exactly the spec containerd computes for the chart's aws-node container", async () => {
    // The same container asked of containerd through CRI, as the kubelet would (hostNetwork sandbox).
    const pod = n1.awsNode.podSpec;
    const c = pod.containers.find((x) => x.name === 'aws-node')!;
    const sc = c.securityContext!;
    const sandboxConfig = {
      metadata: { name: 'aws-node-spec', namespace: 'kube-system', uid: 'spec-check', attempt: 0 },
      linux: {
        cgroup_parent: `${n1.host.cgroupRoot}/spec-check`,
        security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
      },
    };
    const cri = n1.containerd.client;
    const { pod_sandbox_id } = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', {
      config: sandboxConfig,
    });
    try {
      const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
      const PROPAGATION = {
        None: 'PROPAGATION_PRIVATE',
        HostToContainer: 'PROPAGATION_HOST_TO_CONTAINER',
        Bidirectional: 'PROPAGATION_BIDIRECTIONAL',
      };
      const { container_id } = await cri.call<{ container_id: string }>('CreateContainer', {
        pod_sandbox_id,
        sandbox_config: sandboxConfig,
        config: {
          metadata: { name: c.name },
          image: { image: SANDBOX_IMAGE },
          command: c.command,
          mounts: (c.volumeMounts ?? [])
            .filter((m) => volumes.get(m.name)?.hostPath)
            .map((m) => ({
              container_path: m.mountPath,
              host_path: volumes.get(m.name)!.hostPath!.path,
              readonly: m.readOnly ?? false,
              propagation: PROPAGATION[(m.mountPropagation ?? 'None') as keyof typeof PROPAGATION],
            })),
          linux: {
            security_context: {
              capabilities: {
                add_capabilities: sc.capabilities?.add ?? [],
                drop_capabilities: sc.capabilities?.drop ?? [],
              },
              run_as_user: sc.runAsUser === undefined ? null : { value: sc.runAsUser },
              readonly_rootfs: sc.readOnlyRootFilesystem ?? false,
              no_new_privs: sc.allowPrivilegeEscalation === false,
              // What the kubelet sends for procMount Default.
              masked_paths: KUBELET_MASKED_PATHS,
              readonly_paths: KUBELET_READONLY_PATHS,
              namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' },
            },
          },
          labels: mapField({}),
        },
      });
      const st = await cri.call<{ info: { key: string; value: string }[] }>('ContainerStatus', {
        container_id,
        verbose: true,
      });
      const theirs = JSON.parse(st.info.find((e) => e.key === 'info')!.value).runtimeSpec as OciSpec;
      const ours = containerSpec(pod, c, {
        rootfs: cluster.rootfs,
        image: {
          user: cluster.recipe.user,
          entrypoint: cluster.recipe.entrypoint,
          cmd: cluster.recipe.cmd,
          env: [],
        },
        nodeNetns: '/x',
        nodeName: 'n',
        hostname: 'h',
        podName: 'p',
        podNamespace: 'kube-system',
        podUid: 'u',
        hostIp: '10.0.1.4',
        cgroupsPath: '/x',
        files: { hosts: '/h', resolvConf: '/r', hostnameFile: '/n', terminationLog: '/t', shm: '/s' },
        emptyDirs: Object.fromEntries(
          (pod.volumes ?? []).filter((v) => v.emptyDir).map((v) => [v.name, '/e']),
        ),
      });
      expect(ours.process.capabilities).toEqual(theirs.process.capabilities);
      expect(ours.process.noNewPrivileges).toBe(theirs.process.noNewPrivileges ?? false);
      expect(ours.process.user).toEqual(theirs.process.user);
      expect(ours.root.readonly).toBe(theirs.root.readonly ?? false);
      expect(ours.linux.maskedPaths).toEqual(theirs.linux.maskedPaths);
      expect(ours.linux.readonlyPaths).toEqual(theirs.linux.readonlyPaths);
      expect(ours.linux.rootfsPropagation).toBe(theirs.linux.rootfsPropagation);
      const byDest = (spec: OciSpec) =>
        Object.fromEntries(spec.mounts.map((m) => [m.destination, { type: m.type, options: m.options }]));
      const theirMounts = byDest(theirs);
      for (const [dest, m] of Object.entries(byDest(ours))) {
        // emptyDir and the termination log are the kubelet's (not in a bare CRI request).
        if (!(dest in theirMounts)) continue;
        expect({ dest, ...m }).toEqual({ dest, ...theirMounts[dest] });
      }
      expect(ours.linux.namespaces.map((n) => n.type).sort()).toEqual(
        theirs.linux.namespaces
          .map((n) => n.type)
          .filter((t) => t !== 'uts')
          .sort(),
      );
    } finally {
      await cri.call('StopPodSandbox', { pod_sandbox_id });
      await cri.call('RemovePodSandbox', { pod_sandbox_id });
    }
  });

  it('ipamd wrote the conflist the CRI loaded, gave its socket to the group, and is ready by the chart probe', async () => {
    expect(n1.conflist()).toMatchObject({ plugins: [{ type: 'aws-cni' }, { type: 'portmap' }] });
    const sock = statSync(n1.ipamdSocket);
    expect({ uid: sock.uid, gid: sock.gid, mode: (sock.mode & 0o777).toString(8) }).toEqual({
      uid: 0,
      gid: SOCKET_GID,
      mode: '660',
    });
    expect(await n1.awsNode.probe('readiness')).toBe(true);
    expect(await n1.awsNode.probe('liveness')).toBe(true);
  });

  it('starts a pod with a VPC address that the node, a pod on the other node and the internet (SNAT) reach', async () => {
    const { execs, result: web } = await traceExecs(n1.containerd.pid!, '/opt/cni/bin', () =>
      n1.kubelet.runPod({ name: 'web', namespace: 'shop' }),
    );
    const st = await n1.kubelet.status(web.id);
    expect(st.state).toBe('SANDBOX_READY');
    expect(st.ip).toMatch(/^10\.0\.1\.\d+$/);
    expect(allocationsOf(n1, web.id)).toEqual([expect.objectContaining({ address: st.ip })]);

    // What the runtime handed the plugins: the loopback network and the conflist's chain (aws-cni, then
    // portmap). containerd 1.6 (go-cni) sets the two networks up concurrently, so the plugin cannot
    // count on the pod's lo being up, nor on it being down.
    const adds = execs.filter((e) => e.env.CNI_COMMAND === 'ADD');
    expect(adds.map((e) => e.path).sort()).toEqual([
      '/opt/cni/bin/aws-cni',
      '/opt/cni/bin/loopback',
      '/opt/cni/bin/portmap',
    ]);
    const chain = adds.map((e) => e.path).filter((p) => p !== '/opt/cni/bin/loopback');
    expect(chain).toEqual(['/opt/cni/bin/aws-cni', '/opt/cni/bin/portmap']);
    const aws = adds.find((e) => e.path === '/opt/cni/bin/aws-cni')!;
    const args = Object.fromEntries(
      aws.env.CNI_ARGS!.split(';').map((kv) => kv.split('=') as [string, string]),
    );
    expect(args).toEqual({
      IgnoreUnknown: '1',
      K8S_POD_NAMESPACE: 'shop',
      K8S_POD_NAME: 'web',
      K8S_POD_INFRA_CONTAINER_ID: web.id,
      K8S_POD_UID: web.uid,
    });
    expect(aws.env).toMatchObject({
      CNI_CONTAINERID: web.id,
      CNI_IFNAME: 'eth0',
      CNI_NETNS: st.netnsPath,
    });

    const other = await n2.kubelet.runPod({ name: 'other' });
    const ost = await n2.kubelet.status(other.id);
    expect(ost.ip).toMatch(/^10\.0\.2\.\d+$/);

    expect((await n1.host.run('ping', ['-c1', '-W2', st.ip])).code).toBe(0);
    expect(await eventually(() => podPing(st.pid, ost.ip), 10_000, 'pod to pod on the other node')).toBe(
      true,
    );
    const seen = JSON.parse((await podGet(st.pid, cluster.vpc.inetUrl)) ?? '{}') as {
      sourceAddress?: string;
    };
    expect(seen.sourceAddress).toBe(n1.instance.primaryIp);

    for (const [node, pod] of [
      [n1, web],
      [n2, other],
    ] as const) {
      await node.kubelet.stopPod(pod.id);
      await node.kubelet.removePod(pod.id);
      expect(allocationsOf(node, pod.id)).toEqual([]);
    }
    expect(await nodeStateFor(n1, st.ip)).toEqual({ rules: [], routes: [] });
  });

  it('serves a hostPort: containerd passes the port mapping to portmap, traffic to the node reaches the pod', async () => {
    const pod = await n1.kubelet.runPod({ name: 'hostport', ports: [{ containerPort: 80, hostPort: 8080 }] });
    const st = await n1.kubelet.status(pod.id);
    const server = spawn(
      'nsenter',
      [
        `--net=/proc/${st.pid}/ns/net`,
        '--',
        'busybox',
        'sh',
        '-c',
        'while true; do echo pod-says-hi | busybox nc -l -p 80; done',
      ],
      { stdio: 'ignore' },
    );
    try {
      const fromOther = await eventually(
        async () => {
          const r = await n2.host.run('busybox', ['nc', '-w', '2', n1.instance.primaryIp, '8080'], {
            input: '',
          });
          return r.stdout.includes('pod-says-hi') ? r.stdout : undefined;
        },
        10_000,
        'hostPort 8080 on the node answering from the pod',
      );
      expect(fromOther).toContain('pod-says-hi');
    } finally {
      if (server.pid) process.kill(server.pid, 'SIGKILL');
      await n1.kubelet.stopPod(pod.id);
      await n1.kubelet.removePod(pod.id);
    }
  });

  it('a failed ADD (an invalid port mapping) is undone by DEL: no address, veth or rule is left', async () => {
    const before = await hostVeths(n1);
    const { execs, result: err } = await traceExecs(n1.containerd.pid!, '/opt/cni/bin', () =>
      n1.kubelet.runPod({ name: 'badport', ports: [{ containerPort: 80, hostPort: 70000 }] }).then(
        () => undefined,
        (e: Error) => e,
      ),
    );
    // aws-cni's ADD succeeded, portmap refused the mapping, so the runtime undid the chain with DEL.
    expect(err?.message).toMatch(/portmap/i);
    const calls = execs
      .filter((e) => e.path !== '/opt/cni/bin/loopback')
      .map((e) => `${e.env.CNI_COMMAND} ${e.path.split('/').pop()}`);
    expect(calls.slice(0, 2)).toEqual(['ADD aws-cni', 'ADD portmap']);
    expect(calls).toContain('DEL aws-cni');
    const del = execs.find((e) => e.env.CNI_COMMAND === 'DEL' && e.path.endsWith('/aws-cni'))!;
    expect(del.env.CNI_NETNS).toMatch(/^\/var\/run\/netns\/cni-/);
    // containerd cleaned the failed sandbox up itself (sandbox removed), and nothing of it is left.
    expect((await n1.kubelet.list()).filter((p) => p.metadata.name === 'badport')).toEqual([]);
    expect(n1.checkpoint().allocations).toEqual([]);
    expect(await hostVeths(n1)).toEqual(before);
  });

  it('StopPodSandbox tears the network down; Stop and Remove again (no netns, no prevResult) succeed', async () => {
    const pod = await n1.kubelet.runPod({ name: 'twice' });
    const st = await n1.kubelet.status(pod.id);
    const { execs } = await traceExecs(n1.containerd.pid!, '/opt/cni/bin', async () => {
      await n1.kubelet.stopPod(pod.id);
      expect(allocationsOf(n1, pod.id)).toEqual([]);
      await n1.kubelet.stopPod(pod.id);
      await n1.kubelet.removePod(pod.id);
    });
    const dels = execs.filter((e) => e.env.CNI_COMMAND === 'DEL' && e.path === '/opt/cni/bin/aws-cni');
    // The first DEL names the namespace; the later ones (the second Stop, Remove) have none left to name.
    expect(dels.map((d) => d.env.CNI_NETNS ?? '')).toEqual([st.netnsPath, '', '']);
    expect(await nodeStateFor(n1, st.ip)).toEqual({ rules: [], routes: [] });
    expect(await n1.kubelet.list()).toEqual([]);
  });

  it('16 sandboxes started and stopped at once: every call succeeds and nothing is left behind', async () => {
    const names = Array.from({ length: 16 }, (_, i) => `burst-${i}`);
    // m5.large: 3 ENIs x 9 addresses; the kubelet retries a pod whose address is still on its way.
    const started = await Promise.all(names.map((name) => n1.kubelet.runPodRetrying({ name }, 30_000, 500)));
    const ips = await Promise.all(started.map(async ({ pod }) => (await n1.kubelet.status(pod.id)).ip));
    expect(new Set(ips).size).toBe(16);
    const stopped = await Promise.allSettled(started.map(({ pod }) => n1.kubelet.stopPod(pod.id)));
    expect(
      stopped.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason.message),
    ).toEqual([]);
    const removed = await Promise.allSettled(started.map(({ pod }) => n1.kubelet.removePod(pod.id)));
    expect(
      removed.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason.message),
    ).toEqual([]);
    expect(n1.checkpoint().allocations).toEqual([]);
    expect(await hostVeths(n1)).toEqual([]);
    for (const ip of ips) expect(await nodeStateFor(n1, ip)).toEqual({ rules: [], routes: [] });
  });
});
