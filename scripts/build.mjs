// Builds the native addon (node-gyp) and bundles each entry point into dist/ with esbuild.
// A bundle per program keeps start-up to one file read: the CNI binary's start-up is on every pod's path.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { build } from 'esbuild';
import { bundleOptions, entries } from './bundles.mjs';

mkdirSync('dist', { recursive: true });

/**
 * Installs a native addon into dist/ without touching a running process: copying over the file in
 * place rewrites pages that every process using it has mapped (they die with SIGSEGV), so an
 * unchanged addon is left alone and a changed one replaces the old file by rename (a new inode).
 */
function installAddon(from, to) {
  if (existsSync(to) && readFileSync(from).equals(readFileSync(to))) return;
  copyFileSync(from, `${to}.tmp-${process.pid}`);
  renameSync(`${to}.tmp-${process.pid}`, to);
}

// The native addon (native/sys): setns, netlink sockets, SO_PEERCRED, SCM_RIGHTS. Rebuilt when any
// of its sources is newer than the last build.
const addonDir = 'native/sys';
const addonOut = `${addonDir}/build/Release/sys.node`;
if (existsSync(`${addonDir}/binding.gyp`)) {
  const sources = readdirSync(addonDir).filter((f) => /\.(c|h|gyp)$/.test(f));
  const stale =
    !existsSync(addonOut) ||
    sources.some((f) => statSync(`${addonDir}/${f}`).mtimeMs > statSync(addonOut).mtimeMs);
  if (stale) {
    execFileSync('npx', ['node-gyp', 'rebuild', '--silent', `--directory=${addonDir}`], { stdio: 'inherit' });
  }
  installAddon(addonOut, 'dist/sys.node');
}
// Bundles of earlier builds loaded these; a stale copy must not be mistaken for the current addon.
for (const old of ['dist/netns.node', 'dist/netlink.node']) rmSync(old, { force: true });

// The CNI binary runtimes exec (dist/aws-cni): a small C shim that hands the call to ipamd and execs
// aws-cni.mjs beside it when ipamd is away. Installed by rename: the old one may be running.
const shimSrc = 'native/cni-shim/shim.c';
if (existsSync(shimSrc)) {
  const tmp = `dist/aws-cni.tmp-${process.pid}`;
  const cc = process.env.CC ?? 'cc';
  try {
    execFileSync(cc, ['-O2', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-o', tmp, shimSrc], {
      stdio: 'inherit',
    });
  } catch (err) {
    throw new Error(
      `build: compiling ${shimSrc} with "${cc}" failed (${err.message}); install a C compiler or set CC`,
    );
  }
  renameSync(tmp, 'dist/aws-cni');
}

for (const entry of entries) {
  if (!existsSync(entry.in)) {
    console.warn(`build: skipping ${entry.in} (not present yet)`);
    continue;
  }
  const outfile = `dist/${entry.out}.mjs`;
  const chunkDir = `dist/${entry.out}-chunks`;
  const result = await build(bundleOptions(entry));
  chmodSync(outfile, 0o755);
  if (entry.split) pruneChunks(chunkDir, result.metafile);
}

/** Removes chunks an earlier build wrote that this build no longer references (names carry a hash). */
function pruneChunks(dir, metafile) {
  const current = new Set(Object.keys(metafile.outputs).map((f) => f.replace(/^.*\//, '')));
  for (const f of existsSync(dir) ? readdirSync(dir) : []) {
    if (!current.has(f)) rmSync(`${dir}/${f}`);
  }
}
