/**
 * Stages the node bundle (what infra/ami/bundle.sh packs: dist/ bundles and infra/ami/) into a
 * directory for a CDK asset; CDK zips and uploads it, the nodes' user data unpacks it.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

// aws-cni is the native CNI shim (native/cni-shim); the rest are the Node bundles.
// ipamd-chunks/ holds the parts ipamd loads on demand (Kubernetes client, credential providers).
const REQUIRED = ['aws-cni', 'aws-cni.mjs', 'ipamd.mjs', 'ipamd-chunks', 'ipamd-probe.mjs', 'max-pods.mjs'];
const AMI_DIR = new URL('../infra/ami', import.meta.url).pathname;

/** Copies the bundle's files under `stageRoot` (the CDK output directory) and returns that directory. */
export function stageNodeBundle(distDir: string, stageRoot: string): string {
  const missing = REQUIRED.filter((f) => !existsSync(join(distDir, f)));
  if (missing.length > 0) {
    throw new Error(
      `${distDir} lacks ${missing.join(', ')}: run npm run build first (or set -c distDir=...)`,
    );
  }
  const stage = join(stageRoot, 'vpc-cni-node-bundle');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'dist'), { recursive: true });
  for (const f of readdirSync(distDir)) {
    if (f === 'aws-cni' || ((f.endsWith('.mjs') || f.endsWith('.node')) && f !== 'local-vpc.mjs'))
      cpSync(join(distDir, f), join(stage, 'dist', f));
  }
  cpSync(join(distDir, 'ipamd-chunks'), join(stage, 'dist', 'ipamd-chunks'), { recursive: true });
  cpSync(AMI_DIR, join(stage, 'infra/ami'), { recursive: true });
  return stage;
}
