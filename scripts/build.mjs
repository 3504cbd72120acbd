// Builds the native netns addon (node-gyp) and bundles each entry point into dist/ with esbuild.
// A bundle per program keeps start-up to one file read: the CNI binary's start-up is on every pod's path.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { build } from 'esbuild';

const entries = [
  { in: 'maxpods/cli.ts', out: 'max-pods' },
  { in: 'ipamd/main.ts', out: 'ipamd' },
  { in: 'cni/main.ts', out: 'aws-cni' },
  { in: 'infra/local-vpc/cli.ts', out: 'local-vpc' },
  { in: 'infra/local-vpc/demo/main.ts', out: 'demo' },
  { in: 'ipamd/probe.ts', out: 'ipamd-probe' },
];

mkdirSync('dist', { recursive: true });

const addonDir = 'native/netns';
const addonOut = `${addonDir}/build/Release/netns.node`;
if (existsSync(`${addonDir}/binding.gyp`)) {
  const stale = !existsSync(addonOut) || statSync(`${addonDir}/netns.c`).mtimeMs > statSync(addonOut).mtimeMs;
  if (stale) {
    execFileSync('npx', ['node-gyp', 'rebuild', '--silent', `--directory=${addonDir}`], { stdio: 'inherit' });
  }
  copyFileSync(addonOut, 'dist/netns.node');
}

// The `netlink` package's socket binding: lib/net loads it from next to the bundle as netlink.node.
const netlinkBinding = [
  'node_modules/netlink/build/Release/netlink_binding.node',
  `node_modules/netlink/prebuilds/${process.platform}-${process.arch}/node.napi.node`,
].find((f) => existsSync(f));
if (netlinkBinding) copyFileSync(netlinkBinding, 'dist/netlink.node');

for (const entry of entries) {
  if (!existsSync(entry.in)) {
    console.warn(`build: skipping ${entry.in} (not present yet)`);
    continue;
  }
  const outfile = `dist/${entry.out}.mjs`;
  await build({
    entryPoints: [entry.in],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    // The native addon is loaded at run time from next to the bundle.
    external: ['*.node'],
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
}
