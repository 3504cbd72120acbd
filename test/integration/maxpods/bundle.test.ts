// The built calculator (dist/max-pods.mjs, from `npm run build`) run as boot scripts run it: a process,
// its stdout, stderr and exit status.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { startFakeImds } from '../../unit/maxpods/imds-server.js';
import { readReferenceTable } from '../../unit/maxpods/reference-table.js';

const BUNDLE = 'dist/max-pods.mjs';
const run = promisify(execFile);

async function maxPods(args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const r = await run(process.execPath, [BUNDLE, ...args], {
      env: { PATH: process.env.PATH, ...env },
      maxBuffer: 32 << 20,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

beforeAll(() => {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`);
});

describe('dist/max-pods.mjs', () => {
  const reference = readReferenceTable();

  it('matches eni-max-pods.tsv for every type in one --all --output json call', async () => {
    const r = await maxPods(['--all', '--cni-version', '1.18.3', '--show-max-allowed', '--output', 'json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as {
      count: number;
      instanceTypes: { instanceType: string; maxPods: number }[];
    };
    expect(j.count).toBe(1391);
    const got = new Map(j.instanceTypes.map((t) => [t.instanceType, t.maxPods]));
    expect(got).toEqual(reference);
  });

  it('reproduces the reference file line for line in plain --all output', async () => {
    const r = await maxPods(['--all', '--cni-version', '1.18.3', '--show-max-allowed']);
    const expected = [...reference].map(([name, value]) => `${name}\t${value}`).sort();
    expect(r.stdout.trimEnd().split('\n')).toEqual(expected);
  });

  it('prints the reference value as a single number for a sample of types', async () => {
    // A spread of families: old Xen, Nitro, Graviton, bare metal, multi-card, the smallest and largest.
    const sample = [
      't2.micro',
      'm4.large',
      'm5.large',
      'c6g.medium',
      'm5.metal',
      'c6in.32xlarge',
      'p5.48xlarge',
      't3.nano',
      'u-6tb1.112xlarge',
    ];
    const runs = await Promise.all(
      sample.map((t) => maxPods(['--instance-type', t, '--cni-version', '1.18.3', '--show-max-allowed'])),
    );
    sample.forEach((t, i) => {
      expect(runs[i], t).toEqual({ code: 0, stdout: `${reference.get(t)}\n`, stderr: '' });
    });
  });

  it('keeps the fallback note off stdout and exits non-zero on errors', async () => {
    const pd = await maxPods([
      '--instance-type',
      'm4.large',
      '--cni-version',
      '1.18.3',
      '--cni-prefix-delegation-enabled',
    ]);
    expect(pd).toMatchObject({ code: 0, stdout: '20\n' });
    expect(pd.stderr).toMatch(/not a Nitro instance type/);
    const unknown = await maxPods(['--instance-type', 'zz9.large', '--cni-version', '1.18.3']);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toMatch(/unknown instance type "zz9.large"/);
    const usage = await maxPods(['--instance-type', 'm5.large']);
    expect(usage).toMatchObject({ code: 2, stdout: '' });
  });

  it('reads the instance type from an IMDSv2 endpoint given by AWS_EC2_METADATA_SERVICE_ENDPOINT', async () => {
    const imds = await startFakeImds({ instanceType: 'm5.24xlarge' });
    try {
      const r = await maxPods(['--instance-type-from-imds', '--cni-version', '1.18.3'], {
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
      });
      expect(r).toEqual({ code: 0, stdout: '250\n', stderr: '' });
      expect(imds.requests.map((q) => q.method)).toEqual(['PUT', 'GET']);
    } finally {
      await imds.close();
    }
  });

  it('prints the whole table without truncation through a pipe', async () => {
    const r = await maxPods(['--all', '--cni-version', '1.18.3', '--output', 'table']);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(1392);
    expect(lines.at(-1)).toMatch(/^z1d\.xlarge\s/);
  });
});
