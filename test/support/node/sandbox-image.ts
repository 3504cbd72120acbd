/**
 * The pod sandbox ("pause") image, built offline: containerd's CRI runs every pod's sandbox from an
 * image it must find locally (nothing can be pulled here). One layer with Debian's static busybox;
 * the entrypoint sleeps like pause does (containerd stops sandboxes with SIGKILL), and the same
 * binary gives tests ping, wget and nc inside a pod's namespaces.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';
export const SANDBOX_IMAGE = 'localhost/vpccni/pause:busybox';

/** ldd exits non-zero ("not a dynamic executable") for a static binary. */
function isStatic(path: string): boolean {
  try {
    execFileSync('ldd', [path], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
}

/** Writes an OCI image layout tarball for `ctr images import` and returns its path. */
export function buildSandboxImage(dir: string): string {
  if (!existsSync(BUSYBOX) || !isStatic(BUSYBOX))
    throw new Error(`${BUSYBOX} is not Debian's static busybox; install busybox-static (scripts/setup.sh)`);
  const rootfs = join(dir, 'rootfs');
  const blobs = join(dir, 'layout/blobs/sha256');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  mkdirSync(blobs, { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
  for (const applet of ['sh', 'sleep', 'ping', 'wget', 'nc', 'ip'])
    symlinkSync('busybox', join(rootfs, 'bin', applet));
  execFileSync('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '-C',
    rootfs,
    '-cf',
    join(dir, 'layer.tar'),
    '.',
  ]);
  const blob = (file: string) => {
    const bytes = readFileSync(file);
    const digest = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(blobs, digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const layer = blob(join(dir, 'layer.tar'));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/bin/busybox', 'sleep', '2147483647'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: [layer.digest] },
    }),
  );
  writeFileSync(
    join(dir, 'manifest.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob(join(dir, 'config.json')) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  );
  writeFileSync(
    join(dir, 'layout/index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...blob(join(dir, 'manifest.json')),
          annotations: { 'io.containerd.image.name': SANDBOX_IMAGE },
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  writeFileSync(join(dir, 'layout/oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  execFileSync('tar', ['-C', join(dir, 'layout'), '-cf', join(dir, 'image.tar'), '.']);
  return join(dir, 'image.tar');
}
