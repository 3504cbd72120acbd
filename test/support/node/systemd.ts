/**
 * ipamd as the AMI's systemd unit runs it (infra/ami/vpc-cni-ipamd.service), for nodes without the
 * DaemonSet. systemd is not PID 1 here, so the unit's execution environment is translated into an
 * OCI spec and run with runc, directive by directive: ExecStart, EnvironmentFile, User (root when
 * unset), CapabilityBoundingSet / AmbientCapabilities (root's effective set is the bounding set),
 * NoNewPrivileges, ProtectSystem (read-only /usr, /boot, /efi, and /etc for "full"), ProtectHome,
 * ReadWritePaths, PrivateTmp, RuntimeDirectory, LogsDirectory, LimitNOFILE. The service sees the node's own
 * filesystem (its root is the node's "/", new host mounts propagate in as systemd's slave
 * propagation does), the node's PID and network namespaces and a cgroup under system.slice.
 * A directive this translation does not know fails the test instead of being ignored.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostCapabilities, type OciMount, type OciSpec } from './oci.js';
import { REPO } from './rootfs.js';

export const UNIT_FILE = join(REPO, 'infra/ami/vpc-cni-ipamd.service');

/** [Service] directives that shape only the service's lifecycle (restarts, stop), not its sandbox. */
const LIFECYCLE = new Set([
  'Type',
  'KillSignal',
  'TimeoutStopSec',
  'Restart',
  'RestartSec',
  'RuntimeDirectoryPreserve',
]);

export interface Unit {
  service: Map<string, string[]>;
}

/** Parses a unit file's [Service] section: directive -> every value it was given, in order. */
export function parseUnit(text: string): Unit {
  const service = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`unit: "${line}" is not Directive=value`);
    const key = line.slice(0, eq).trim();
    service.set(key, [...(service.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return { service };
}

function last(unit: Unit, key: string): string | undefined {
  return unit.service.get(key)?.at(-1);
}

function yes(v: string | undefined): boolean {
  return v !== undefined && ['yes', 'true', 'on', '1'].includes(v.toLowerCase());
}

/** systemd's environment file syntax: VAR=value lines, # comments, optional quotes. */
export function parseEnvFile(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`environment file: "${line}" is not VAR=value`);
    out.push(`${m[1]}=${m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1')}`);
  }
  return out;
}

export interface ServiceContext {
  /** Reads a node file (EnvironmentFile=), or undefined when it does not exist. */
  readNodeFile(path: string): string | undefined;
  /** Whether a path exists on the node (systemd protects only paths that exist). */
  nodeHas(path: string): boolean;
  /** The node's network namespace as a node path (the service shares it). */
  nodeNetns: string;
  /** cgroupfs path for the service (under the node's cgroup root). */
  cgroupsPath: string;
  /** Directory for the service's private /tmp and /var/tmp (PrivateTmp=). */
  privateTmp: string;
}

/** The OCI spec of the unit's service; also returns what systemd creates before starting it. */
export function serviceSpec(
  unit: Unit,
  ctx: ServiceContext,
): { spec: OciSpec; runtimeDirs: { path: string; mode: string }[] } {
  const known = new Set([
    ...LIFECYCLE,
    'ExecStart',
    'EnvironmentFile',
    'Environment',
    'User',
    'CapabilityBoundingSet',
    'AmbientCapabilities',
    'NoNewPrivileges',
    'ProtectSystem',
    'ProtectHome',
    'ReadWritePaths',
    'PrivateTmp',
    'RuntimeDirectory',
    'RuntimeDirectoryMode',
    'LogsDirectory',
    'LogsDirectoryMode',
    'LimitNOFILE',
  ]);
  for (const key of unit.service.keys())
    if (!known.has(key)) throw new Error(`unit directive ${key}= is not translated`);

  const exec = unit.service.get('ExecStart');
  if (exec?.length !== 1) throw new Error('the unit needs exactly one ExecStart=');
  const args = exec[0]!.split(/\s+/);
  if (!args[0]!.startsWith('/')) throw new Error('ExecStart= must start with an absolute path');

  // systemd's own environment for a system service, then Environment=, then the files (in order).
  const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];
  for (const e of unit.service.get('Environment') ?? [])
    env.push(...e.split(/\s+/).map((x) => x.replace(/^"(.*)"$/, '$1')));
  for (const f of unit.service.get('EnvironmentFile') ?? []) {
    const optional = f.startsWith('-');
    const path = optional ? f.slice(1) : f;
    const text = ctx.readNodeFile(path);
    if (text === undefined) {
      if (optional) continue;
      throw new Error(`EnvironmentFile=${path} does not exist`);
    }
    env.push(...parseEnvFile(text));
  }

  const user = last(unit, 'User');
  if (user !== undefined && user !== 'root' && user !== '0')
    throw new Error(`User=${user} is not translated`);
  // Root: every capability in the bounding set is effective; CapabilityBoundingSet= narrows it.
  let caps = hostCapabilities();
  const bounding = unit.service.get('CapabilityBoundingSet');
  if (bounding) {
    const listed = bounding.flatMap((b) => b.split(/\s+/)).filter(Boolean);
    if (listed.some((c) => c.startsWith('~')))
      throw new Error('CapabilityBoundingSet=~... is not translated');
    caps = caps.filter((c) => listed.includes(c));
  }
  const ambient = (unit.service.get('AmbientCapabilities') ?? [])
    .flatMap((a) => a.split(/\s+/))
    .filter(Boolean);

  const mounts: OciMount[] = [];
  const readOnly = (path: string) => {
    if (ctx.nodeHas(path))
      mounts.push({ destination: path, type: 'bind', source: path, options: ['rbind', 'rro'] });
  };
  const protect = (last(unit, 'ProtectSystem') ?? 'no').toLowerCase();
  if (protect === 'strict') throw new Error('ProtectSystem=strict is not translated');
  if (yes(protect) || protect === 'full') for (const p of ['/usr', '/boot', '/efi']) readOnly(p);
  if (protect === 'full') readOnly('/etc');
  const home = (last(unit, 'ProtectHome') ?? 'no').toLowerCase();
  if (yes(home)) {
    for (const p of ['/home', '/root', '/run/user'].filter((x) => ctx.nodeHas(x)))
      mounts.push({
        destination: p,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['ro', 'nosuid', 'nodev', 'noexec', 'mode=000'],
      });
  } else if (home !== 'no') throw new Error(`ProtectHome=${home} is not translated`);
  for (const p of (unit.service.get('ReadWritePaths') ?? []).flatMap((r) => r.split(/\s+/)).filter(Boolean)) {
    const path = p.replace(/^-/, '');
    mounts.push({ destination: path, type: 'bind', source: path, options: ['rbind', 'rw'] });
  }
  if (yes(last(unit, 'PrivateTmp'))) {
    for (const [dest, sub] of [
      ['/tmp', 'tmp'],
      ['/var/tmp', 'var-tmp'],
    ] as const)
      mounts.push({
        destination: dest,
        type: 'bind',
        source: join(ctx.privateTmp, sub),
        options: ['rbind', 'rw'],
      });
  }
  // What systemd creates before the start: RuntimeDirectory= under /run, LogsDirectory= under /var/log.
  const created = (key: string, root: string) =>
    (unit.service.get(key) ?? [])
      .flatMap((r) => r.split(/\s+/))
      .filter(Boolean)
      .map((d) => ({ path: `${root}/${d}`, mode: last(unit, `${key}Mode`) ?? '0755' }));
  const runtimeDirs = [...created('RuntimeDirectory', '/run'), ...created('LogsDirectory', '/var/log')];

  // This machine denies raising a hard limit (no CAP_SYS_RESOURCE, as for oom_score_adj): the unit's
  // LimitNOFILE applies up to the hard limit this process has, which a real systemd would not need.
  const wanted = last(unit, 'LimitNOFILE');
  const hard = Number(
    /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 'NaN',
  );
  const nofile =
    wanted === undefined
      ? undefined
      : String(Number.isFinite(hard) ? Math.min(Number(wanted), hard) : Number(wanted));
  const spec: OciSpec & { process: { rlimits?: unknown[] } } = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0, additionalGids: [0] },
      args,
      env,
      cwd: '/',
      capabilities: {
        bounding: caps,
        effective: caps,
        permitted: caps,
        ...(ambient.length ? { ambient } : {}),
      },
      noNewPrivileges: yes(last(unit, 'NoNewPrivileges')),
      ...(nofile ? { rlimits: [{ type: 'RLIMIT_NOFILE', hard: Number(nofile), soft: Number(nofile) }] } : {}),
    },
    // The node's own filesystem, as a service sees it.
    root: { path: '/', readonly: false },
    mounts,
    linux: {
      // A mount namespace of its own (for the protections above); the node's PID, IPC and network.
      namespaces: [{ type: 'mount' }, { type: 'network', path: ctx.nodeNetns }],
      cgroupsPath: ctx.cgroupsPath,
      rootfsPropagation: 'rslave',
      resources: { devices: [{ allow: true, access: 'rwm' }] },
    },
  };
  return { spec, runtimeDirs };
}

export function readUnit(file = UNIT_FILE): Unit {
  return parseUnit(readFileSync(file, 'utf8'));
}
