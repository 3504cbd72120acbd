/** Shared fixtures for the deployment tests: a freshly bundled calculator and a tiny IMDSv2 server. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';

export const ROOT = new URL('../../../', import.meta.url).pathname;

/** Set by the kubelet or the chart's downward API, never by a user: not Helm values, not in the env tables. */
export const PLATFORM_ENV = new Set([
  'KUBERNETES_SERVICE_HOST',
  'KUBERNETES_SERVICE_PORT',
  'KUBECONFIG',
  'MY_NODE_NAME',
]);

/** The environment variables ipamd's one configuration module reads that a user sets. */
export function ipamdEnvNames(): Set<string> {
  const text = readFileSync(join(ROOT, 'ipamd/config.ts'), 'utf8');
  const names = [...text.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g)].map((m) => m[1]!);
  return new Set(names.filter((n) => !PLATFORM_ENV.has(n)));
}
export const run = promisify(execFile);

/** Bundles maxpods/cli.ts the way scripts/build.mjs does, so these tests need no prior build. */
export async function bundleMaxPods(outDir: string): Promise<string> {
  const outfile = join(outDir, 'max-pods.mjs');
  await build({
    entryPoints: [join(ROOT, 'maxpods/cli.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'error',
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  return outfile;
}

export interface FakeImds {
  endpoint: string;
  /** Paths requested, in order, with whether a valid token came along. */
  requests: { method: string; path: string; token: boolean }[];
  close(): Promise<void>;
}

/** IMDSv2 only: GETs without a token from PUT /latest/api/token get 401, as on a hardened instance. */
export async function startFakeImds(meta: Record<string, string>): Promise<FakeImds> {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const requests: FakeImds['requests'] = [];
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '';
    const hasToken = req.headers['x-aws-ec2-metadata-token'] === token;
    requests.push({ method: req.method ?? '', path, token: hasToken });
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return void res.writeHead(400).end();
      return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
    }
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (!hasToken) return void res.writeHead(401).end();
    const key = path.replace(/^\/latest\/meta-data\//, '');
    if (!(key in meta)) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(meta[key]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The calculator's plain answer, computed in this process (the expected value next to a spawned run). */
export async function calculatorSays(args: string[]): Promise<string> {
  const { runMaxPods } = await import('../../../maxpods/main.js');
  let out = '';
  let err = '';
  const code = await runMaxPods(args, { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {} });
  if (code !== 0) throw new Error(`max-pods ${args.join(' ')} failed (${code}): ${err}`);
  return out.trim();
}
