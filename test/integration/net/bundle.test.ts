// lib/net from an esbuild bundle deployed alone (no node_modules next to it): both native addons must
// load from next to the bundle, as dist/*.mjs + dist/sys.node do.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetnsFixture } from './helpers.js';

const repo = resolve(import.meta.dirname, '../../..');
const fx = new NetnsFixture();
let dir: string;
let ns: string;

beforeAll(async () => {
  const addon = join(repo, 'native/sys/build/Release/sys.node');
  if (!existsSync(addon)) {
    execFileSync('npx', ['node-gyp', 'rebuild', '--silent', '--directory=native/sys'], { cwd: repo });
  }
  dir = mkdtempSync(join(tmpdir(), 'vpccni-netbundle-'));
  const entry = join(dir, 'entry.ts');
  writeFileSync(
    entry,
    `import { openRtnl, netnsPath, readSysctl } from ${JSON.stringify(join(repo, 'lib/net/index.ts'))};
const ns = netnsPath(process.argv[2]);
const nl = openRtnl(ns);
await nl.createVeth({ name: 'bv0', peerName: 'bv1' });
const names = (await nl.listLinks()).map((l) => l.name);
nl.close();
console.log(JSON.stringify({ names, forward: readSysctl('net.ipv4.ip_forward', ns) }));
`,
  );
  await build({
    entryPoints: [entry],
    outfile: join(dir, 'app.mjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['*.node'],
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'silent',
  });
  copyFileSync(addon, join(dir, 'sys.node'));
  ns = fx.add('bundle');
});
afterAll(() => {
  fx.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('runs from a bundle with the addon beside it', () => {
  const out = execFileSync(process.execPath, [join(dir, 'app.mjs'), ns], { cwd: dir, encoding: 'utf8' });
  const { names, forward } = JSON.parse(out);
  expect([...names].sort()).toEqual(['bv0', 'bv1', 'lo']);
  expect(forward).toBe('0');
});

it('explains a missing addon', () => {
  rmSync(join(dir, 'sys.node'));
  let stderr = '';
  try {
    execFileSync(process.execPath, [join(dir, 'app.mjs'), ns], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    stderr = String((err as { stderr: string }).stderr);
  }
  expect(stderr).toMatch(/native addon sys.node not found or not loadable; run "npm run build"/);
});
