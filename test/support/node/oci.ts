/**
 * The OCI runtime spec a Kubernetes container gets, computed the way the kubelet and containerd 1.6
 * compute it, from a pod spec (the rendered chart's DaemonSet): the container's command, env, user,
 * capabilities (containerd's default set, then `add`, then `drop`, with ALL handled first),
 * allowPrivilegeEscalation -> noNewPrivileges, readOnlyRootFilesystem, every volumeMount (hostPath
 * with its mountPropagation, emptyDir as tmpfs), the kubelet's masked and read-only /proc paths,
 * hostNetwork -> the node's network namespace, its own mount/pid/ipc namespaces (no hostPID), the
 * resources as cgroup limits. Privileged containers get every capability the host has, no masks and
 * writable sysfs/cgroupfs, as containerd gives them. test/integration/node checks the result
 * against the spec containerd itself generates for the same container.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; ambient?: string[] };
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    rootfsPropagation?: string;
    resources: Record<string, unknown>;
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
}

/** Kernel capability names by number (linux/capability.h). */
const CAP_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
].map((n) => `CAP_${n}`);

/** containerd's default capability set for a non-privileged container (oci.populateDefaultUnixSpec). */
export const CONTAINERD_DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** The kubelet's masked and read-only paths for procMount Default (securitycontext.DefaultMaskedPaths). */
export const KUBELET_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
export const KUBELET_READONLY_PATHS = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/** The capabilities of one set (CapBnd, CapEff, ...) in a /proc/<pid>/status text. */
export function capabilityNames(
  status: string,
  set: 'CapBnd' | 'CapEff' | 'CapPrm' | 'CapInh' | 'CapAmb',
): string[] {
  const line = new RegExp(`^${set}:\\s*([0-9a-f]+)$`, 'm').exec(status);
  if (!line) throw new Error(`no ${set} in the status`);
  const mask = BigInt(`0x${line[1]}`);
  return CAP_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** Every capability in this process's bounding set: what containerd calls "all" on this host. */
export function hostCapabilities(): string[] {
  return capabilityNames(readFileSync('/proc/self/status', 'utf8'), 'CapBnd');
}

/** containerd's WithCapabilities: ALL in add, then ALL in drop, then each add, then each drop. */
export function containerCapabilities(caps: { add?: string[]; drop?: string[] } | undefined): string[] {
  const norm = (c: string) => `CAP_${c.toUpperCase().replace(/^CAP_/, '')}`;
  const add = caps?.add ?? [];
  const drop = caps?.drop ?? [];
  let set = [...CONTAINERD_DEFAULT_CAPS];
  if (add.some((c) => c.toUpperCase() === 'ALL')) set = hostCapabilities();
  if (drop.some((c) => c.toUpperCase() === 'ALL')) set = [];
  for (const c of add.filter((x) => x.toUpperCase() !== 'ALL').map(norm)) if (!set.includes(c)) set.push(c);
  const dropped = new Set(drop.filter((x) => x.toUpperCase() !== 'ALL').map(norm));
  return set.filter((c) => !dropped.has(c));
}

const PROPAGATION: Record<string, string> = {
  None: 'rprivate',
  HostToContainer: 'rslave',
  Bidirectional: 'rshared',
};

/** Kubernetes quantities the chart uses (Mi/Gi/Ki, m for CPU, plain numbers). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|k|M|G)?$/.exec(q);
  if (!m) throw new Error(`unsupported quantity ${q}`);
  const scale: Record<string, number> = {
    m: 1e-3,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
  };
  return Number(m[1]) * (m[2] ? scale[m[2]]! : 1);
}

/** The parts of a Kubernetes pod spec this derivation reads. */
export interface PodSpecLike {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    supplementalGroups?: number[];
    fsGroup?: number;
  };
  volumes?: {
    name: string;
    hostPath?: { path: string; type?: string };
    emptyDir?: { medium?: string; sizeLimit?: string };
  }[];
  containers: ContainerLike[];
  initContainers?: ContainerLike[];
}

export interface ContainerLike {
  name: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    privileged?: boolean;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: unknown;
  };
  volumeMounts?: {
    name: string;
    mountPath: string;
    readOnly?: boolean;
    mountPropagation?: string;
    subPath?: string;
  }[];
}

/** What the node gives the container besides the pod spec. */
export interface NodeContext {
  /** The image's root filesystem (assembleImageRootfs) and its config (Dockerfile USER, ENTRYPOINT, CMD). */
  rootfs: string;
  image: { user: string; entrypoint: string[]; cmd: string[]; env: string[] };
  /** The node's network namespace as the runtime opens it (hostNetwork). */
  nodeNetns: string;
  nodeName: string;
  /** The node's hostname (hostNetwork pods see it). */
  hostname: string;
  podName: string;
  podNamespace: string;
  podUid: string;
  /** The node's address (status.hostIP). */
  hostIp: string;
  /** cgroupfs path of the container (the kubelet's QoS tree, pod, container). */
  cgroupsPath: string;
  /** Per-container files the kubelet/containerd provide (hosts, resolv.conf, termination log). */
  files: { hosts: string; resolvConf: string; hostnameFile: string; terminationLog: string; shm: string };
  /** emptyDir volumes of the pod: name -> directory the kubelet made (a tmpfs for medium Memory). */
  emptyDirs: Record<string, string>;
  /** Variables the cluster injects (service links, IRSA); empty without an API server. */
  extraEnv?: Record<string, string>;
}

/** A file of the image, or '' when it has none (containerd then resolves ids without it). */
function readOptional(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

/** A container's uid/gid as containerd resolves them (runAsUser, then /etc/passwd of the image). */
function resolveUser(spec: PodSpecLike, c: ContainerLike, ctx: NodeContext) {
  const sc = c.securityContext ?? {};
  const psc = spec.securityContext ?? {};
  const [imgUser, imgGroup] = ctx.image.user.split(':');
  const uid = sc.runAsUser ?? psc.runAsUser ?? Number(imgUser ?? 0);
  const passwd = readOptional(join(ctx.rootfs, 'etc/passwd'))
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => Number(f[2]) === uid);
  const explicitGroup = sc.runAsGroup ?? psc.runAsGroup;
  // containerd: runAsUser without runAsGroup takes the passwd entry's group, not the image's USER group.
  let gid: number;
  if (explicitGroup !== undefined) gid = explicitGroup;
  else if ((sc.runAsUser ?? psc.runAsUser) !== undefined || imgGroup === undefined)
    gid = Number(passwd?.[3] ?? 0);
  else gid = Number(imgGroup);
  const name = passwd?.[0];
  const groups = readOptional(join(ctx.rootfs, 'etc/group'))
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && name !== undefined && f[3]!.split(',').includes(name))
    .map((f) => Number(f[2]));
  const extra = [...(psc.supplementalGroups ?? []), ...(psc.fsGroup !== undefined ? [psc.fsGroup] : [])];
  return { uid, gid, additionalGids: [...new Set([gid, ...groups, ...extra])] };
}

/**
 * The kubelet's $(VAR) expansion (env values, command, args): a reference to a variable defined
 * before it is replaced, `$$` stands for `$`, anything else stays as written.
 */
export function expandVars(text: string, vars: Map<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return vars.has(name!) ? vars.get(name!)! : m;
  });
}

function envOf(c: ContainerLike, ctx: NodeContext): { env: string[]; vars: Map<string, string> } {
  const fields: Record<string, string> = {
    'spec.nodeName': ctx.nodeName,
    'metadata.name': ctx.podName,
    'metadata.namespace': ctx.podNamespace,
    'metadata.uid': ctx.podUid,
    'status.hostIP': ctx.hostIp,
    // hostNetwork: the pod's address is the node's.
    'status.podIP': ctx.hostIp,
  };
  const vars = new Map<string, string>();
  for (const e of c.env ?? []) {
    let v: string;
    if (e.value !== undefined) v = expandVars(e.value, vars);
    else if (e.valueFrom?.fieldRef) {
      const f = fields[e.valueFrom.fieldRef.fieldPath];
      if (f === undefined)
        throw new Error(`env ${e.name}: fieldRef ${e.valueFrom.fieldRef.fieldPath} is not supported`);
      v = f;
    } else if (e.valueFrom) throw new Error(`env ${e.name}: only value and fieldRef are supported`);
    else v = '';
    vars.set(e.name, v);
  }
  for (const [k, v] of Object.entries(ctx.extraEnv ?? {})) vars.set(k, v);
  const env = [...ctx.image.env, `HOSTNAME=${ctx.hostname}`, ...[...vars].map(([k, v]) => `${k}=${v}`)];
  return { env, vars };
}

/** The hostPath directories and files the kubelet creates before starting the container. */
export function hostPathsToCreate(spec: PodSpecLike, c: ContainerLike): { path: string; type: string }[] {
  const out: { path: string; type: string }[] = [];
  for (const m of c.volumeMounts ?? []) {
    const v = spec.volumes?.find((x) => x.name === m.name);
    if (v?.hostPath) out.push({ path: v.hostPath.path, type: v.hostPath.type ?? '' });
  }
  return out;
}

/** The container's OCI spec, as containerd would hand it to runc. */
export function containerSpec(spec: PodSpecLike, c: ContainerLike, ctx: NodeContext): OciSpec {
  const sc = c.securityContext ?? {};
  const privileged = sc.privileged === true;
  if (sc.seccompProfile !== undefined) throw new Error(`${c.name}: seccompProfile is not modelled`);
  const caps = privileged ? hostCapabilities() : containerCapabilities(sc.capabilities);
  const ro = privileged ? [] : ['ro'];
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/sys',
      type: 'sysfs',
      source: 'sysfs',
      options: ['nosuid', 'noexec', 'nodev', ...(privileged ? ['rw'] : ro)],
    },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', ...(privileged ? ['rw'] : ro)],
    },
  ];
  const fileRo = sc.readOnlyRootFilesystem ? 'ro' : 'rw';
  const bind = (destination: string, source: string, options: string[]) =>
    mounts.push({ destination, type: 'bind', source, options: ['rbind', ...options] });
  bind('/etc/hostname', ctx.files.hostnameFile, ['rprivate', fileRo]);
  bind('/etc/hosts', ctx.files.hosts, ['rprivate', fileRo]);
  bind('/etc/resolv.conf', ctx.files.resolvConf, ['rprivate', fileRo]);
  bind('/dev/shm', ctx.files.shm, ['rprivate', 'rw']);
  bind('/dev/termination-log', ctx.files.terminationLog, ['rprivate', 'rw']);
  let rootfsPropagation: string | undefined;
  for (const m of c.volumeMounts ?? []) {
    if (m.subPath) throw new Error(`${c.name}: volumeMount ${m.name} uses subPath, which is not modelled`);
    const v = spec.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`${c.name}: volumeMount ${m.name} names no volume`);
    const propagation = PROPAGATION[m.mountPropagation ?? 'None'];
    if (!propagation) throw new Error(`${c.name}: mountPropagation ${m.mountPropagation} is unknown`);
    if (propagation === 'rshared') rootfsPropagation = 'rshared';
    else if (propagation === 'rslave' && rootfsPropagation !== 'rshared') rootfsPropagation = 'rslave';
    const mode = m.readOnly ? 'ro' : 'rw';
    if (v.hostPath) bind(m.mountPath, v.hostPath.path, [propagation, mode]);
    else if (v.emptyDir) {
      const dir = ctx.emptyDirs[v.name];
      if (!dir) throw new Error(`${c.name}: emptyDir ${v.name} was not prepared`);
      bind(m.mountPath, dir, [propagation, mode]);
    } else throw new Error(`${c.name}: volume ${v.name} is of a kind this harness does not model`);
  }
  const { env, vars } = envOf(c, ctx);
  // The kubelet expands $(VAR) in the container's command and args, not in the image's.
  const expand = (xs: string[]) => xs.map((x) => expandVars(x, vars));
  const args = c.command?.length
    ? [...expand(c.command), ...expand(c.args ?? [])]
    : [...ctx.image.entrypoint, ...(c.args ? expand(c.args) : ctx.image.cmd)];
  const namespaces: { type: string; path?: string }[] = [{ type: 'mount' }, { type: 'ipc' }];
  if (!spec.hostPID) namespaces.push({ type: 'pid' });
  if (spec.hostNetwork) namespaces.push({ type: 'network', path: ctx.nodeNetns });
  else throw new Error('only hostNetwork pods are run under runc here (other pods go through CRI)');
  const resources: Record<string, unknown> = { devices: [{ allow: false, access: 'rwm' }] };
  const limit = c.resources?.limits?.memory;
  if (limit) resources.memory = { limit: quantity(limit), swap: quantity(limit) };
  const cpu = c.resources?.requests?.cpu;
  if (cpu) resources.cpu = { shares: Math.max(2, Math.floor((quantity(cpu) * 1000 * 1024) / 1000)) };
  if (privileged) resources.devices = [{ allow: true, access: 'rwm' }];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: resolveUser(spec, c, ctx),
      args,
      env,
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: sc.allowPrivilegeEscalation === false,
    },
    root: { path: ctx.rootfs, readonly: sc.readOnlyRootFilesystem === true },
    mounts,
    linux: {
      namespaces,
      cgroupsPath: ctx.cgroupsPath,
      ...(rootfsPropagation ? { rootfsPropagation } : {}),
      resources,
      ...(privileged ? {} : { maskedPaths: KUBELET_MASKED_PATHS, readonlyPaths: KUBELET_READONLY_PATHS }),
    },
  };
}
