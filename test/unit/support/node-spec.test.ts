/**
 * The node harness's translations (test/support/node): a Kubernetes container to the OCI spec the
 * kubelet and containerd would give runc, the systemd unit to the spec systemd would apply, and the
 * image Dockerfile to a root filesystem recipe. The integration tests run ipamd under these specs,
 * so a translation that drifts from its source would make them test something else.
 */
import { describe, expect, it } from 'vitest';
import { awsNodePodSpec } from '../../support/node/aws-node.js';
import {
  CONTAINERD_DEFAULT_CAPS,
  containerCapabilities,
  containerSpec,
  expandVars,
  hostCapabilities,
  KUBELET_MASKED_PATHS,
  type NodeContext,
  type PodSpecLike,
} from '../../support/node/oci.js';
import { readDockerfile } from '../../support/node/rootfs.js';
import { parseEnvFile, parseUnit, readUnit, serviceSpec } from '../../support/node/systemd.js';

const ctx: NodeContext = {
  rootfs: '/rootfs-that-is-not-read',
  image: {
    user: '65532:65532',
    entrypoint: ['/opt/vpc-cni/bin/node'],
    cmd: ['/opt/vpc-cni/lib/ipamd.mjs'],
    env: ['PATH=/bin'],
  },
  nodeNetns: '/var/run/netns/node',
  nodeName: 'ip-10-0-1-4',
  hostname: 'h',
  podName: 'aws-node-x',
  podNamespace: 'kube-system',
  podUid: 'uid',
  hostIp: '10.0.1.4',
  cgroupsPath: '/vpccni-x/pod/c',
  files: {
    hosts: '/f/hosts',
    resolvConf: '/f/resolv',
    hostnameFile: '/f/hostname',
    terminationLog: '/f/t',
    shm: '/f/shm',
  },
  emptyDirs: { tmp: '/f/tmp' },
};

describe("the kubelet's $(VAR) expansion", () => {
  it('replaces variables defined before, keeps unknown references, unescapes $$', () => {
    const vars = new Map([['MY_NODE_IP', '10.0.1.4']]);
    expect(expandVars('$(MY_NODE_IP):61678', vars)).toBe('10.0.1.4:61678');
    expect(expandVars('$(UNSET):1', vars)).toBe('$(UNSET):1');
    expect(expandVars('$$(MY_NODE_IP) costs $$5', vars)).toBe('$(MY_NODE_IP) costs $5');
  });
});

describe('container capabilities, as containerd computes them', () => {
  it('adds to and drops from containerd’s default set, ALL first', () => {
    expect(containerCapabilities({ add: ['NET_ADMIN'] })).toEqual([
      ...CONTAINERD_DEFAULT_CAPS,
      'CAP_NET_ADMIN',
    ]);
    expect(containerCapabilities({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] })).toEqual([
      'CAP_NET_ADMIN',
      'CAP_NET_RAW',
    ]);
    expect(containerCapabilities({ add: ['ALL'], drop: ['SYS_ADMIN'] })).toEqual(
      hostCapabilities().filter((c) => c !== 'CAP_SYS_ADMIN'),
    );
    expect(containerCapabilities(undefined)).toEqual(CONTAINERD_DEFAULT_CAPS);
  });
});

describe('the aws-node container spec from the rendered chart', () => {
  const pod = awsNodePodSpec();
  const main = pod.containers.find((c) => c.name === 'aws-node')!;

  it('takes user, capabilities, privileges, root and namespaces from the chart', () => {
    const spec = containerSpec(pod, main, ctx);
    expect(spec.process.args).toEqual(main.command);
    expect(spec.process.user).toEqual({ uid: 0, gid: 0, additionalGids: [0] });
    expect(spec.process.capabilities.bounding).toEqual(
      containerCapabilities(main.securityContext?.capabilities),
    );
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.root).toEqual({ path: ctx.rootfs, readonly: true });
    expect(spec.linux.namespaces).toEqual([
      { type: 'mount' },
      { type: 'ipc' },
      { type: 'pid' },
      { type: 'network', path: '/var/run/netns/node' },
    ]);
    expect(spec.linux.maskedPaths).toEqual(KUBELET_MASKED_PATHS);
    expect(spec.process.env).toContain('MY_NODE_NAME=ip-10-0-1-4');
    expect(spec.process.env).toContain('IPAMD_SOCKET_PATH=/var/run/aws-node/vpc-cni.sock');
  });

  it('mounts every volumeMount: hostPath with its propagation, emptyDir from the kubelet’s directory', () => {
    const spec = containerSpec(pod, main, ctx);
    for (const m of main.volumeMounts ?? []) {
      const v = pod.volumes!.find((x) => x.name === m.name)!;
      const mount = spec.mounts.find((x) => x.destination === m.mountPath);
      expect(mount, m.mountPath).toEqual({
        destination: m.mountPath,
        type: 'bind',
        source: v.hostPath ? v.hostPath.path : '/f/tmp',
        options: ['rbind', 'rprivate', m.readOnly ? 'ro' : 'rw'],
      });
    }
    expect(spec.linux.rootfsPropagation).toBeUndefined();
    const propagated: PodSpecLike = {
      ...pod,
      containers: [
        {
          ...main,
          volumeMounts: [
            { name: 'run-dir', mountPath: '/a', mountPropagation: 'HostToContainer' },
            { name: 'cni-net-dir', mountPath: '/b', mountPropagation: 'Bidirectional' },
          ],
        },
      ],
    };
    const p = containerSpec(propagated, propagated.containers[0]!, ctx);
    expect(p.mounts.find((m) => m.destination === '/a')!.options).toEqual(['rbind', 'rslave', 'rw']);
    expect(p.mounts.find((m) => m.destination === '/b')!.options).toEqual(['rbind', 'rshared', 'rw']);
    expect(p.linux.rootfsPropagation).toBe('rshared');
  });

  it('gives the privileged init container every capability, no masks, writable sysfs', () => {
    const init = pod.initContainers!.find((c) => c.name === 'aws-vpc-cni-init')!;
    const spec = containerSpec(pod, init, ctx);
    expect(spec.process.capabilities.bounding).toEqual(hostCapabilities());
    expect(spec.linux.maskedPaths).toBeUndefined();
    expect(spec.mounts.find((m) => m.destination === '/sys')!.options).toContain('rw');
  });

  it('refuses what it does not model instead of ignoring it', () => {
    const odd = { ...main, volumeMounts: [{ name: 'run-dir', mountPath: '/x', subPath: 'y' }] };
    expect(() => containerSpec(pod, odd, ctx)).toThrow(/subPath/);
    expect(() => containerSpec({ ...pod, hostNetwork: false }, main, ctx)).toThrow(/hostNetwork/);
  });
});

describe('the systemd unit as a runc spec', () => {
  const ctx = {
    readNodeFile: (p: string) => (p === '/etc/vpc-cni/ipamd.env' ? 'A=1\n# c\nB="two"\n' : undefined),
    nodeHas: (p: string) => p !== '/efi',
    nodeNetns: '/var/run/netns/node',
    cgroupsPath: '/vpccni-x/system.slice/s',
    privateTmp: '/t',
  };

  it('applies the installed unit’s sandbox', () => {
    const unit = readUnit();
    const { spec, runtimeDirs } = serviceSpec(unit, ctx);
    const bounding = unit.service.get('CapabilityBoundingSet')!.join(' ').split(/\s+/);
    expect(spec.process.capabilities.bounding).toEqual(
      hostCapabilities().filter((c) => bounding.includes(c)),
    );
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.process.env).toEqual(expect.arrayContaining(['A=1', 'B=two']));
    expect(spec.mounts.map((m) => [m.destination, m.options.at(-1)])).toEqual(
      expect.arrayContaining([
        ['/usr', 'rro'],
        ['/etc', 'rro'],
        ['/etc/cni/net.d', 'rw'],
        ['/tmp', 'rw'],
      ]),
    );
    expect(spec.mounts.some((m) => m.destination === '/efi')).toBe(false);
    expect(spec.linux.namespaces.map((n) => n.type)).toEqual(['mount', 'network']);
    expect(runtimeDirs).toEqual([
      { path: '/run/aws-node', mode: '0755' },
      { path: '/var/log/aws-routed-eni', mode: '0755' },
    ]);
  });

  it('fails on a directive it does not translate', () => {
    const unit = parseUnit('[Service]\nExecStart=/bin/true\nProtectKernelTunables=yes\n');
    expect(() => serviceSpec(unit, ctx)).toThrow(/ProtectKernelTunables/);
    expect(() => parseEnvFile('not a variable\n')).toThrow(/VAR=value/);
  });
});

describe('the image recipe from infra/image/Dockerfile', () => {
  it('installs iptables and copies the bundles, ipamd’s chunks, portmap and the init script', () => {
    const r = readDockerfile('/dist');
    expect(r.packages).toEqual(['iptables']);
    const copied = r.copies.flatMap((c) => c.sources.map((s) => [s, c.dest]));
    expect(copied).toEqual(
      expect.arrayContaining([
        ['/dist/ipamd-chunks', '/opt/vpc-cni/lib/ipamd-chunks'],
        ['/usr/lib/cni/portmap', '/opt/vpc-cni/cni/portmap'],
      ]),
    );
    expect(r.links).toEqual([{ target: '/usr/local/bin/node', path: '/opt/vpc-cni/bin/node' }]);
    expect(r.user).toBe('65532:65532');
  });
});
