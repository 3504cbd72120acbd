/**
 * ipamd's memory budget (< 60 MB RSS, bench/ipamd-rss.ts) depends on what its bundle loads at start:
 * the entry point and the chunks it imports statically. This builds ipamd as scripts/build.mjs does
 * (in memory) and fails when a heavy package slips into that eager graph.
 */
import { build, type Metafile } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';

interface BundleEntry {
  in: string;
  out: string;
}
const { entries, bundleOptions } = (await import('../../../scripts/bundles.mjs' as string)) as {
  entries: BundleEntry[];
  bundleOptions: (entry: BundleEntry, outDir?: string) => Record<string, unknown>;
};

/** Packages (by node_modules path) in the files a set of outputs is made of. */
function packagesOf(meta: Metafile, outputs: string[]): Set<string> {
  const out = new Set<string>();
  for (const o of outputs) {
    for (const input of Object.keys(meta.outputs[o]!.inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
      out.add(m ? m[1]! : input.split('/')[0]!);
    }
  }
  return out;
}

describe('the ipamd bundle', () => {
  let meta: Metafile;
  let eager: string[];
  let lazy: string[];

  beforeAll(async () => {
    const entry = entries.find((e) => e.out === 'ipamd')!;
    const result = await build({
      ...bundleOptions(entry, 'vpccni-bundle-test'),
      write: false,
      metafile: true,
    });
    meta = result.metafile!;
    const main = Object.keys(meta.outputs).find((o) => o.endsWith('/ipamd.mjs'))!;
    // What Node reads at start: the entry and, transitively, what it imports statically.
    const seen = new Set<string>([main]);
    const queue = [main];
    while (queue.length > 0) {
      for (const imp of meta.outputs[queue.pop()!]!.imports) {
        if (imp.kind === 'import-statement' && !imp.external && !seen.has(imp.path)) {
          seen.add(imp.path);
          queue.push(imp.path);
        }
      }
    }
    eager = [...seen];
    lazy = Object.keys(meta.outputs).filter((o) => !seen.has(o) && o.endsWith('.mjs'));
  }, 60_000);

  it('loads neither the EC2 SDK client, nor the Kubernetes client, nor a fetch implementation at start', () => {
    const loaded = packagesOf(meta, eager);
    for (const heavy of ['@aws-sdk/client-ec2', '@kubernetes/client-node', 'node-fetch', 'tr46', 'undici']) {
      expect(loaded.has(heavy), `${heavy} is in ipamd's eager graph`).toBe(false);
    }
    // The parts ipamd does need are there (the check looks at the right graph).
    for (const needed of ['@smithy/signature-v4', '@aws-sdk/xml-builder', 'pino', 'prom-client', 'ipamd']) {
      expect(loaded.has(needed), needed).toBe(true);
    }
  });

  it('keeps the Kubernetes client in a chunk read on demand, without node-fetch', () => {
    const onDemand = packagesOf(meta, lazy);
    expect(onDemand.has('@kubernetes/client-node')).toBe(true);
    expect(onDemand.has('node-fetch')).toBe(false);
    expect(onDemand.has('tr46')).toBe(false);
  });

  it('stays small: the eager code is under 1 MB of source', () => {
    const bytes = eager.reduce((n, o) => n + meta.outputs[o]!.bytes, 0);
    expect(bytes).toBeLessThan(1024 * 1024);
  });
});
