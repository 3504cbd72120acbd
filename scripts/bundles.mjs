// What each program's bundle is made of and how esbuild builds it: scripts/build.mjs writes them to
// dist/, tests build them in memory to check what a program loads.

import { fileURLToPath } from 'node:url';

/** Entry points, aliases and outDir are relative to the repository root, wherever the build runs from. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const entries = [
  { in: 'maxpods/cli.ts', out: 'max-pods' },
  // ESM entry points tree-shake; split: each dynamic import (client-node, rarely used credential providers)
  // becomes a chunk under dist/ipamd-chunks/ that a daemon which never needs it never reads. The source
  // text a process loads costs it several times its size in RSS (bench/ipamd-rss.ts).
  // node-fetch: only client-node code paths ipamd never runs import it (see the stub).
  {
    in: 'ipamd/main.ts',
    out: 'ipamd',
    mainFields: ['module', 'main'],
    split: true,
    alias: { 'node-fetch': './ipamd/k8s/node-fetch-stub.ts' },
  },
  { in: 'cni/main.ts', out: 'aws-cni' },
  { in: 'infra/local-vpc/cli.ts', out: 'local-vpc' },
  { in: 'infra/local-vpc/demo/main.ts', out: 'demo' },
  { in: 'ipamd/probe.ts', out: 'ipamd-probe' },
];

/** esbuild options for one entry (outputs under `outDir`). */
export function bundleOptions(entry, outDir = 'dist') {
  return {
    absWorkingDir: ROOT,
    ...(entry.split
      ? {
          entryPoints: { [entry.out]: entry.in },
          outdir: outDir,
          splitting: true,
          outExtension: { '.js': '.mjs' },
          chunkNames: `${entry.out}-chunks/[name]-[hash]`,
          metafile: true,
        }
      : { entryPoints: [entry.in], outfile: `${outDir}/${entry.out}.mjs` }),
    ...(entry.mainFields ? { mainFields: entry.mainFields } : {}),
    ...(entry.alias ? { alias: entry.alias } : {}),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: entry.split === true,
    sourcemap: false,
    legalComments: 'none',
    // Native addons are loaded at run time from next to the bundle.
    external: ['*.node'],
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'warning',
  };
}
