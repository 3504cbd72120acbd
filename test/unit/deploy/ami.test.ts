import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseNetConf } from '../../../cni/netconf.js';
import { IPAMD_NODE_FLAGS } from '../../../ipamd/node-flags.js';
import { DEFAULT_SOCKET_PATH } from '../../../lib/protocol/ipamd.js';
import { bundleMaxPods, calculatorSays, type FakeImds, ROOT, run, startFakeImds } from './helpers.js';

const AMI = join(ROOT, 'infra/ami');
let t: string;
let dist: string;
let root: string;

function install(args: string[], destdir = root) {
  return spawnSync(
    'sh',
    [
      join(AMI, 'install.sh'),
      '--dist',
      dist,
      '--node',
      process.execPath,
      '--cni-plugins',
      join(t, 'cni'),
      ...args,
    ],
    {
      env: { PATH: process.env.PATH, DESTDIR: destdir },
      encoding: 'utf8',
    },
  );
}

beforeAll(async () => {
  t = mkdtempSync(join(tmpdir(), 'vpccni-ami-'));
  dist = join(t, 'dist');
  mkdirSync(dist);
  await bundleMaxPods(dist);
  for (const f of ['aws-cni', 'ipamd', 'ipamd-probe', 'local-vpc'])
    writeFileSync(join(dist, `${f}.mjs`), `console.log('${f}');\n`);
  writeFileSync(join(dist, 'aws-cni'), '#!/bin/sh\n# native shim stand-in\n', { mode: 0o755 });
  writeFileSync(join(dist, 'sys.node'), 'addon');
  mkdirSync(join(dist, 'ipamd-chunks'));
  writeFileSync(join(dist, 'ipamd-chunks/k8s-AAAA.mjs'), 'export {};\n');
  mkdirSync(join(t, 'cni'));
  writeFileSync(join(t, 'cni/portmap'), '#!/bin/sh\n');
  root = join(t, 'root');
  const r = install([]);
  expect(r.stderr).toContain('installed vpc-cni');
  expect(r.status).toBe(0);
}, 60_000);
afterAll(() => rmSync(t, { recursive: true, force: true }));

describe('infra/ami/install.sh into a DESTDIR', () => {
  it('lays out the runtime, the plugin, the calculator, the hook, the config and the unit', () => {
    const executable = [
      'opt/vpc-cni/bin/node',
      'opt/cni/bin/aws-cni',
      'opt/cni/bin/aws-cni.mjs',
      'opt/cni/bin/portmap',
      'usr/local/bin/max-pods',
      'usr/local/bin/vpc-cni-bootstrap',
    ];
    for (const f of executable) expect(statSync(join(root, f)).mode & 0o111, f).toBeTruthy();
    for (const f of ['aws-cni.mjs', 'ipamd.mjs', 'ipamd-probe.mjs', 'max-pods.mjs', 'sys.node']) {
      expect(existsSync(join(root, 'opt/vpc-cni/lib', f)), f).toBe(true);
    }
    expect(readdir(join(root, 'opt/vpc-cni/lib/ipamd-chunks'))).toEqual(['k8s-AAAA.mjs']);
    expect(existsSync(join(root, 'opt/vpc-cni/lib/local-vpc.mjs'))).toBe(false);
    expect(statSync(join(root, 'etc/cni/net.d')).isDirectory()).toBe(true);
    expect(readdir(join(root, 'etc/cni/net.d'))).toEqual([]); // ipamd writes the conflist when ready
    for (const f of [
      'etc/vpc-cni/ipamd.env',
      'etc/vpc-cni/10-aws.conflist.template',
      'etc/systemd/system/vpc-cni-ipamd.service',
    ]) {
      expect(existsSync(join(root, f)), f).toBe(true);
    }
    expect(existsSync(join(root, 'etc/systemd/system/multi-user.target.wants'))).toBe(false);
  });

  it('points the wrappers at the shipped runtime, and the runtime runs the installed calculator', async () => {
    // The runtime execs the native shim; it execs the Node plugin beside it when ipamd is away.
    expect(readFileSync(join(root, 'opt/cni/bin/aws-cni'), 'utf8')).toContain('native shim stand-in');
    expect(readFileSync(join(root, 'opt/cni/bin/aws-cni.mjs'), 'utf8')).toContain(
      'exec /opt/vpc-cni/bin/node /opt/vpc-cni/lib/aws-cni.mjs "$@"',
    );
    expect(readFileSync(join(root, 'usr/local/bin/max-pods'), 'utf8')).toContain(
      'exec /opt/vpc-cni/bin/node /opt/vpc-cni/lib/max-pods.mjs "$@"',
    );
    const { stdout } = await run(join(root, 'opt/vpc-cni/bin/node'), [
      join(root, 'opt/vpc-cni/lib/max-pods.mjs'),
      '--instance-type',
      'm5.large',
      '--cni-version',
      '1.19.0',
    ]);
    expect(stdout.trim()).toBe('29');
  });

  it('keeps an existing ipamd.env and enables the service only when asked', () => {
    writeFileSync(join(root, 'etc/vpc-cni/ipamd.env'), 'WARM_IP_TARGET=5\n');
    const r = install(['--enable-ipamd-service']);
    expect(r.status).toBe(0);
    expect(readFileSync(join(root, 'etc/vpc-cni/ipamd.env'), 'utf8')).toBe('WARM_IP_TARGET=5\n');
    const link = join(root, 'etc/systemd/system/multi-user.target.wants/vpc-cni-ipamd.service');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/etc/systemd/system/vpc-cni-ipamd.service');
  });

  it('enables the nodeadm drop-in unit (AL2023 AMIs) only when asked, with its drop-in directory', () => {
    const dest = join(t, 'root-nodeadm');
    expect(install([], dest).status).toBe(0);
    expect(existsSync(join(dest, 'etc/systemd/system/vpc-cni-nodeadm.service'))).toBe(true);
    expect(existsSync(join(dest, 'etc/systemd/system/multi-user.target.wants/vpc-cni-nodeadm.service'))).toBe(
      false,
    );
    expect(install(['--enable-nodeadm-dropin'], dest).status).toBe(0);
    const link = join(dest, 'etc/systemd/system/multi-user.target.wants/vpc-cni-nodeadm.service');
    expect(readlinkSync(link)).toBe('/etc/systemd/system/vpc-cni-nodeadm.service');
    expect(statSync(join(dest, 'etc/eks/nodeadm.d')).isDirectory()).toBe(true);
    const unit = readFileSync(join(AMI, 'vpc-cni-nodeadm.service'), 'utf8');
    expect(unit).toMatch(/^Before=nodeadm-run\.service$/m);
    expect(unit).toContain('vpc-cni-bootstrap --output nodeconfig');
    expect(unit).toContain('/etc/eks/nodeadm.d/20-vpc-cni.yaml');
    const units = join(t, 'units-nodeadm');
    mkdirSync(units, { recursive: true });
    writeFileSync(join(units, 'vpc-cni-nodeadm.service'), unit);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'vpc-cni-nodeadm.service')], {
      encoding: 'utf8',
    });
    expect(
      r.stderr
        .split('\n')
        .filter(
          (l) => l !== '' && !/nodeadm-(run|config)\.service|\/usr\/local\/bin\/vpc-cni-bootstrap/.test(l),
        ),
    ).toEqual([]);
  });

  it('refuses to install without the bundles or a usable Node.js, saying what to do', () => {
    const empty = join(t, 'empty');
    mkdirSync(empty, { recursive: true });
    let r = spawnSync('sh', [join(AMI, 'install.sh'), '--dist', empty, '--node', process.execPath], {
      env: { PATH: process.env.PATH, DESTDIR: join(t, 'x') },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/aws-cni\.mjs is missing; run npm run build first/);
    r = install(['--node', '/bin/false'], join(t, 'y'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\/bin\/false does not run/);
    r = install(['--bogus'], join(t, 'z'));
    expect(r.stderr).toMatch(/unknown argument --bogus/);
  });

  it('installs a conflist template the CNI plugin accepts', () => {
    const conflist = JSON.parse(readFileSync(join(root, 'etc/vpc-cni/10-aws.conflist.template'), 'utf8'));
    expect(conflist.plugins.map((p: { type: string }) => p.type)).toEqual(['aws-cni', 'portmap']);
    const [aws, portmap] = conflist.plugins;
    // The runtime hands each plugin its entry plus the list's name and cniVersion.
    const conf = parseNetConf(
      JSON.stringify({ cniVersion: conflist.cniVersion, name: conflist.name, ...aws }),
      'ADD',
    );
    expect(conf.ipamdSocket).toBe(DEFAULT_SOCKET_PATH);
    expect(portmap.capabilities).toEqual({ portMappings: true });
  });
});

function readdir(p: string): string[] {
  return spawnSync('ls', ['-A', p], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

describe('vpc-cni-ipamd.service', () => {
  it('passes systemd-analyze verify against the installed tree', () => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    expect(which.status, 'systemd-analyze is missing: scripts/setup.sh installs the systemd package').toBe(0);
    const units = join(t, 'units');
    mkdirSync(units, { recursive: true });
    // Same unit, with the absolute paths moved into the DESTDIR so verify can check them here.
    const unit = readFileSync(join(AMI, 'vpc-cni-ipamd.service'), 'utf8')
      .replaceAll('/opt/vpc-cni/', `${root}/opt/vpc-cni/`)
      .replaceAll('/etc/vpc-cni/', `${root}/etc/vpc-cni/`);
    writeFileSync(join(units, 'vpc-cni-ipamd.service'), unit);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'vpc-cni-ipamd.service')], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // And verify does catch a broken unit.
    writeFileSync(join(units, 'broken.service'), unit.replace('ExecStart=', 'ExecStrat='));
    const bad = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'broken.service')], {
      encoding: 'utf8',
    });
    expect(bad.stderr).toMatch(/Unknown key 'ExecStrat'|no ExecStart/);
  });

  it('reads ipamd.env, restarts, keeps the run directory and starts before the kubelet', () => {
    const unit = readFileSync(join(AMI, 'vpc-cni-ipamd.service'), 'utf8');
    expect(unit).toMatch(/^EnvironmentFile=-\/etc\/vpc-cni\/ipamd\.env$/m);
    expect(unit).toContain(
      `\nExecStart=/opt/vpc-cni/bin/node ${IPAMD_NODE_FLAGS.join(' ')} /opt/vpc-cni/lib/ipamd.mjs\n`,
    );
    expect(unit).toMatch(/^Restart=always$/m);
    expect(unit).toMatch(/^RuntimeDirectory=aws-node$/m);
    expect(unit).toMatch(/^RuntimeDirectoryPreserve=yes$/m);
    expect(unit).toMatch(/^Before=kubelet\.service$/m);
    const env = readFileSync(join(AMI, 'ipamd.env'), 'utf8');
    expect(env).toMatch(/^IPAMD_SOCKET_PATH=\/var\/run\/aws-node\//m);
  });
});

describe('vpc-cni-bootstrap (kubelet --max-pods from IMDS and the calculator)', () => {
  let imds: FakeImds;
  let maxPodsBin: string;
  beforeAll(async () => {
    imds = await startFakeImds({ 'instance-type': 'm5.large', 'placement/availability-zone': 'us-west-2b' });
    maxPodsBin = join(t, 'max-pods');
    writeFileSync(
      maxPodsBin,
      `#!/bin/sh\nexec ${process.execPath} ${join(root, 'opt/vpc-cni/lib/max-pods.mjs')} "$@"\n`,
    );
    chmodSync(maxPodsBin, 0o755);
  });
  afterAll(() => imds.close());

  async function hook(envFile: string, args: string[] = [], extra: Record<string, string> = {}) {
    const file = join(t, `env-${Math.random().toString(36).slice(2)}`);
    writeFileSync(file, envFile);
    return run(join(root, 'usr/local/bin/vpc-cni-bootstrap'), ['--env-file', file, ...args], {
      env: {
        PATH: process.env.PATH,
        MAX_PODS_BIN: maxPodsBin,
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
        ...extra,
      },
    });
  }

  const calculator = (args: string[]) =>
    calculatorSays(['--instance-type', 'm5.large', '--cni-version', '1.19.0', ...args]);

  it('gives the calculator’s number for the running instance type, asking IMDS with a v2 token', async () => {
    imds.requests.length = 0;
    const { stdout } = await hook('ENABLE_PREFIX_DELEGATION=false\n');
    expect(stdout.trim()).toBe(await calculator([]));
    expect(stdout.trim()).toBe('29');
    const get = imds.requests.find((r) => r.path === '/latest/meta-data/instance-type');
    expect(get?.token).toBe(true);
  });

  it('applies prefix delegation, custom networking and MAX_ENI from the environment file', async () => {
    expect((await hook('ENABLE_PREFIX_DELEGATION=true\n')).stdout.trim()).toBe(
      await calculator(['--cni-prefix-delegation-enabled']),
    );
    expect((await hook('AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true\n')).stdout.trim()).toBe(
      await calculator(['--cni-custom-networking-enabled']),
    );
    expect((await hook('MAX_ENI=2\n')).stdout.trim()).toBe(await calculator(['--cni-max-eni', '2']));
    expect((await hook('MAX_ENI=2\n')).stdout.trim()).toBe('20');
    // The environment wins over the file, as systemd's Environment= does over EnvironmentFile=.
    expect((await hook('MAX_ENI=2\n', [], { MAX_ENI: '1' })).stdout.trim()).toBe('11');
  });

  it('prints kubelet args with the ENIConfig label of the node’s zone under custom networking', async () => {
    const { stdout } = await hook('AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true\n', ['--output', 'kubelet-args']);
    expect(stdout.trim()).toBe('--max-pods=20 --node-labels=k8s.amazonaws.com/eniConfig=us-west-2b');
    expect((await hook('', ['--output', 'kubelet-args'])).stdout.trim()).toBe('--max-pods=29');
  });

  it('prints a kubelet config drop-in', async () => {
    const { stdout } = await hook('', ['--output=kubelet-config']);
    expect(JSON.parse(stdout)).toEqual({
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      maxPods: 29,
    });
  });

  it('prints a nodeadm NodeConfig drop-in (AL2023): maxPods and the expression nodeadm sizes kubeReserved from', async () => {
    const plain = parseYaml((await hook('', ['--output', 'nodeconfig'])).stdout);
    expect(plain).toEqual({
      apiVersion: 'node.eks.aws/v1alpha1',
      kind: 'NodeConfig',
      spec: { kubelet: { maxPodsExpression: '29', config: { maxPods: 29 } } },
    });
    const custom = parseYaml(
      (await hook('AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true\nMAX_PODS=17\n', ['--output', 'nodeconfig']))
        .stdout,
    );
    expect(custom.spec.kubelet).toEqual({
      maxPodsExpression: '17',
      config: { maxPods: 17 },
      flags: ['--node-labels=k8s.amazonaws.com/eniConfig=us-west-2b'],
    });
    // nodeadm: kubeReserved memory = 11 MiB per pod + 255 MiB, of the expression's value.
    expect(11 * Number(custom.spec.kubelet.maxPodsExpression) + 255).toBe(442);
  });

  it('uses MAX_PODS as given, and rejects a bad one', async () => {
    expect((await hook('MAX_PODS=17\n')).stdout.trim()).toBe('17');
    await expect(hook('MAX_PODS=seventeen\n')).rejects.toThrow(
      /MAX_PODS="seventeen" is not a positive whole number/,
    );
  });

  it('fails loudly when IMDS is unreachable or the output is unknown', async () => {
    await expect(hook('', [], { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9' })).rejects.toThrow(
      /calculator failed/,
    );
    await expect(hook('', ['--output', 'yaml'])).rejects.toThrow(
      /--output must be number, nodeconfig, kubelet-args or kubelet-config/,
    );
  });
});
