import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderChart } from '../../../infra/helm/chart.js';
import { IPAMD_NODE_FLAGS } from '../../../ipamd/node-flags.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const INIT = join(ROOT, 'infra/image/vpc-cni-init');
const REAL_MAX_PODS = join(ROOT, 'dist/max-pods.mjs');

function write(path: string, text: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

describe('vpc-cni-init (the DaemonSet init container)', () => {
  let t: string;
  const env = () => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    VPC_CNI_SRC_DIR: join(t, 'image/opt/vpc-cni'),
    HOST_VPC_CNI_DIR: join(t, 'host/opt/vpc-cni'),
    HOST_CNI_BIN_DIR: join(t, 'host/opt/cni/bin'),
    HOST_INSTALL_PREFIX: join(t, 'host/opt/vpc-cni'),
    PROC_SYS_DIR: join(t, 'proc/sys'),
    PROC_NET_ROUTE: join(t, 'proc/net/route'),
  });
  const run = (extra: Record<string, string> = {}) =>
    spawnSync('sh', [INIT], { env: { ...env(), ...extra }, encoding: 'utf8' });

  beforeAll(() => {
    t = mkdtempSync(join(tmpdir(), 'vpccni-init-'));
    const src = join(t, 'image/opt/vpc-cni');
    mkdirSync(join(src, 'bin'), { recursive: true });
    symlinkSync(process.execPath, join(src, 'bin/node'));
    write(
      join(src, 'lib/aws-cni.mjs'),
      'process.stdout.write(JSON.stringify({ cni: process.argv.slice(2) }));\n',
    );
    // Stands in for the native shim with ipamd away: it execs the Node plugin beside it.
    write(join(src, 'lib/aws-cni'), '#!/bin/sh\nexec "$(dirname "$0")/aws-cni.mjs" "$@"\n', 0o755);
    if (existsSync(REAL_MAX_PODS)) write(join(src, 'lib/max-pods.mjs'), readFileSync(REAL_MAX_PODS, 'utf8'));
    else write(join(src, 'lib/max-pods.mjs'), 'process.stdout.write("29\\n");\n');
    write(join(src, 'lib/sys.node'), 'addon');
    // The image's lib/ also holds ipamd's chunk directory, which the host does not need.
    write(join(src, 'lib/ipamd-chunks/chunk-x.mjs'), 'export {};\n');
    write(join(src, 'cni/portmap'), '#!/bin/sh\necho portmap\n', 0o755);
    write(join(t, 'proc/sys/net/ipv4/ip_forward'), '0\n');
    write(join(t, 'proc/sys/net/ipv4/conf/ens5/rp_filter'), '1\n');
    write(
      join(t, 'proc/net/route'),
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
        'ens5\t0010A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n' +
        'ens5\t00000000\t0110A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n',
    );
    write(join(t, 'host/opt/cni/bin/portmap'), '#!/bin/sh\necho node-own-portmap\n', 0o755);
  });
  afterAll(() => rmSync(t, { recursive: true, force: true }));

  it('sets ip_forward and loose rp_filter on the default-route interface', () => {
    const r = run();
    expect(r.stderr).toContain('set net.ipv4.conf.ens5.rp_filter=2');
    expect(r.status).toBe(0);
    expect(readFileSync(join(t, 'proc/sys/net/ipv4/ip_forward'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(t, 'proc/sys/net/ipv4/conf/ens5/rp_filter'), 'utf8')).toBe('2\n');
  });

  it('installs an aws-cni entry the runtime can exec, and the calculator, with their runtime', () => {
    const cni = join(t, 'host/opt/cni/bin/aws-cni');
    expect(statSync(cni).mode & 0o111).toBeTruthy();
    expect(execFileSync(cni, ['x', 'y'], { encoding: 'utf8' })).toBe('{"cni":["x","y"]}');
    const maxPods = join(t, 'host/opt/vpc-cni/bin/max-pods');
    const out = execFileSync(maxPods, ['--instance-type', 'm5.large', '--cni-version', '1.18.0'], {
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('29');
    expect(existsSync(join(t, 'host/opt/vpc-cni/lib/sys.node'))).toBe(true);
    expect(existsSync(join(t, 'host/opt/vpc-cni/bin/node'))).toBe(true);
    expect(existsSync(join(t, 'host/opt/vpc-cni/lib/ipamd-chunks'))).toBe(false);
  });

  it("keeps the node's own portmap", () => {
    expect(readFileSync(join(t, 'host/opt/cni/bin/portmap'), 'utf8')).toContain('node-own-portmap');
    rmSync(join(t, 'host/opt/cni/bin/portmap'));
    expect(run().status).toBe(0);
    expect(readFileSync(join(t, 'host/opt/cni/bin/portmap'), 'utf8')).toContain('echo portmap');
  });

  it('fails with a clear message when it cannot find or set the primary interface', () => {
    let r = run({ PROC_NET_ROUTE: join(t, 'proc/sys/net/ipv4/ip_forward') });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no IPv4 default route .* set PRIMARY_INTERFACE/);
    r = run({ PRIMARY_INTERFACE: 'eth9' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sysctl net\.ipv4\.conf\.eth9\.rp_filter does not exist/);
    r = run({ PRIMARY_INTERFACE: '../x' });
    expect(r.stderr).toMatch(/is not an interface name/);
  });
});

describe('the container image definition', () => {
  const dockerfile = readFileSync(join(ROOT, 'infra/image/Dockerfile'), 'utf8');
  const lines = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: { name: string; lines: string[] }[] = [];
  for (const l of lines) {
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(l);
    if (from) stages.push({ name: from[1] ?? String(stages.length), lines: [] });
    else stages[stages.length - 1]?.lines.push(l);
  }
  const final = stages[stages.length - 1]!;

  it('is multi-stage and the final stage runs as a non-root user by default', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const users = final.lines.filter((l) => l.startsWith('USER '));
    expect(users.length).toBe(1);
    expect(users[0]).not.toMatch(/^USER\s+(0|root)\b/);
  });

  it('copies only built files into the final stage', () => {
    const copies = final.lines.filter((l) => /^(COPY|ADD)\b/.test(l));
    expect(copies.length).toBeGreaterThan(0);
    const build = readFileSync(join(ROOT, 'scripts/bundles.mjs'), 'utf8');
    const outputs = new Set(
      [...build.matchAll(/out:\s*'([^']+)'/g)]
        .map((m) => `dist/${m[1]}.mjs`)
        .concat([...build.matchAll(/out:\s*'([^']+)'[^}]*split: true/g)].map((m) => `dist/${m[1]}-chunks`))
        .concat('dist/sys.node', 'dist/aws-cni'),
    );
    for (const c of copies) {
      expect(c, 'no ADD').toMatch(/^COPY\b/);
      const parts = c.split(/\s+/).filter((p) => !p.startsWith('--'));
      const sources = parts.slice(1, -1);
      if (c.includes('--from=build')) {
        for (const s of sources) {
          const rel = s.replace(/^.*\/(dist\/)/, '$1');
          expect(outputs.has(rel) || rel === 'dist/*.node', s).toBe(true);
        }
      } else if (!c.includes('--from=')) {
        expect(sources).toEqual(['infra/image/vpc-cni-init']);
      }
    }
  });

  it('provides every path the DaemonSet executes', () => {
    const pod = (
      renderChart().find((o) => o.kind === 'DaemonSet') as never as {
        spec: { template: { spec: Record<string, never[]> } };
      }
    ).spec.template.spec;
    const commands = [...pod.containers!, ...pod.initContainers!].flatMap(
      (c: {
        command: string[];
        readinessProbe?: { exec: { command: string[] } };
        livenessProbe?: { exec: { command: string[] } };
      }) => [
        ...c.command,
        ...(c.readinessProbe?.exec.command ?? []),
        ...(c.livenessProbe?.exec.command ?? []),
      ],
    );
    const provided = final.lines.join('\n');
    for (const path of commands.filter((p) => p.startsWith('/'))) {
      const base = path.split('/').pop()!;
      expect(provided.includes(path) || provided.includes(`dist/${base}`), path).toBe(true);
    }
  });

  it('starts ipamd with its Node flags and ships the chunks it loads on demand', () => {
    const entry = final.lines.find((l) => l.startsWith('ENTRYPOINT '))!;
    const cmd = final.lines.find((l) => l.startsWith('CMD '))!;
    expect([...JSON.parse(entry.slice(11)), ...JSON.parse(cmd.slice(4))]).toEqual([
      '/opt/vpc-cni/bin/node',
      ...IPAMD_NODE_FLAGS,
      '/opt/vpc-cni/lib/ipamd.mjs',
    ]);
    expect(final.lines).toContain(
      'COPY --from=build /home/node/src/dist/ipamd-chunks /opt/vpc-cni/lib/ipamd-chunks',
    );
    const ds = renderChart().find((o) => o.kind === 'DaemonSet') as never as {
      spec: { template: { spec: { containers: { name: string; command: string[] }[] } } };
    };
    const main = ds.spec.template.spec.containers.find((c) => c.name === 'aws-node')!;
    expect(main.command).toEqual([
      '/opt/vpc-cni/bin/node',
      ...IPAMD_NODE_FLAGS,
      '/opt/vpc-cni/lib/ipamd.mjs',
    ]);
  });

  it('keeps the build context small', () => {
    const ignore = readFileSync(join(ROOT, 'infra/image/Dockerfile.dockerignore'), 'utf8');
    for (const p of ['**/node_modules', '.git', 'dist', 'cdk.out']) expect(ignore.split('\n')).toContain(p);
  });
});
