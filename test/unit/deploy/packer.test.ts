import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleMaxPods, ROOT } from './helpers.js';

const TEMPLATE = join(ROOT, 'infra/packer/vpc-cni-node.pkr.hcl');
const hasPacker = spawnSync('sh', ['-c', 'command -v packer']).status === 0;
let t: string;
let bundle: string;

beforeAll(async () => {
  t = mkdtempSync(join(tmpdir(), 'vpccni-packer-'));
  const dist = join(t, 'dist');
  mkdirSync(dist);
  await bundleMaxPods(dist);
  for (const f of ['aws-cni', 'ipamd', 'ipamd-probe', 'local-vpc'])
    writeFileSync(join(dist, `${f}.mjs`), `console.log('${f}');\n`);
  writeFileSync(join(dist, 'aws-cni'), '#!/bin/sh\n', { mode: 0o755 }); // stands in for the native shim
  mkdirSync(join(dist, 'ipamd-chunks'));
  writeFileSync(join(dist, 'ipamd-chunks/k8s-AAAA.mjs'), 'export {};\n');
  bundle = join(t, 'vpc-cni-bundle.tar.gz');
  const r = spawnSync('sh', [join(ROOT, 'infra/ami/bundle.sh'), bundle], {
    env: { PATH: process.env.PATH, DIST_DIR: dist },
    encoding: 'utf8',
  });
  expect(r.stderr).toContain('wrote');
}, 60_000);
afterAll(() => rmSync(t, { recursive: true, force: true }));

describe('the image bundle (infra/ami/bundle.sh)', () => {
  it('holds the node bundles and infra/ami, without the development tools', () => {
    const list = spawnSync('tar', ['-tzf', bundle], { encoding: 'utf8' }).stdout.split('\n');
    for (const f of [
      'dist/aws-cni',
      'dist/aws-cni.mjs',
      'dist/ipamd.mjs',
      'dist/ipamd-probe.mjs',
      'dist/max-pods.mjs',
      'infra/ami/install.sh',
      'infra/ami/vpc-cni-bootstrap',
    ]) {
      expect(list, f).toContain(f);
    }
    expect(list).not.toContain('dist/local-vpc.mjs');
  });

  it('installs from its unpacked root exactly as the Packer provisioner runs it', () => {
    const unpacked = join(t, 'unpacked');
    mkdirSync(unpacked);
    expect(spawnSync('tar', ['-xzf', bundle, '-C', unpacked]).status).toBe(0);
    const r = spawnSync(
      join(unpacked, 'infra/ami/install.sh'),
      ['--dist', join(unpacked, 'dist'), '--node', process.execPath],
      {
        env: { PATH: process.env.PATH, DESTDIR: join(t, 'root') },
        encoding: 'utf8',
      },
    );
    expect(r.stderr).toContain('installed vpc-cni');
    const out = spawnSync(
      process.execPath,
      [
        join(t, 'root/opt/vpc-cni/lib/max-pods.mjs'),
        '--instance-type',
        'c5.xlarge',
        '--cni-version',
        '1.19.0',
      ],
      { encoding: 'utf8' },
    );
    expect(out.stdout.trim()).toBe('58');
  });

  it('refuses to pack an unbuilt tree', () => {
    const r = spawnSync('sh', [join(ROOT, 'infra/ami/bundle.sh'), join(t, 'x.tgz')], {
      env: { PATH: process.env.PATH, DIST_DIR: join(t, 'nope') },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/aws-cni\.mjs is missing; run npm run build first/);
  });
});

describe('the Packer template', () => {
  const hcl = readFileSync(TEMPLATE, 'utf8');

  it('uploads the bundle and runs install.sh from it', () => {
    expect(hcl).toMatch(/provisioner "file"[\s\S]*source\s*=\s*var\.bundle/);
    expect(hcl).toMatch(/\/tmp\/vpc-cni\/infra\/ami\/install\.sh --dist \/tmp\/vpc-cni\/dist/);
    expect(hcl).toMatch(/source "amazon-ebs" "node"/);
    expect(hcl).toMatch(/amazon-eks-node-al2023-\$\{var\.arch\}/);
  });

  it.skipIf(!hasPacker)('passes packer validate and packer fmt -check', () => {
    const r = spawnSync('packer', ['validate', '-var', `bundle=${bundle}`, TEMPLATE], {
      encoding: 'utf8',
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    });
    expect(r.stdout + r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(spawnSync('packer', ['fmt', '-check', TEMPLATE]).status).toBe(0);
  });

  it.skipIf(!hasPacker)('packer validate catches a broken template', () => {
    const broken = join(t, 'broken.pkr.hcl');
    copyFileSync(TEMPLATE, broken);
    writeFileSync(
      broken,
      readFileSync(broken, 'utf8').replace(
        'instance_type = var.instance_type',
        'instance_typo = var.instance_type',
      ),
    );
    const r = spawnSync('packer', ['validate', '-var', `bundle=${bundle}`, broken], {
      encoding: 'utf8',
      env: { ...process.env, CHECKPOINT_DISABLE: '1' },
    });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/instance_typo/);
  });
});
