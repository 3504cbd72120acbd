// Rebuilds the instance-type table from a live EC2 DescribeInstanceTypes sweep of every enabled region,
// then regenerates lib/instance-types/data.generated.ts from it. Needs AWS credentials allowed
// ec2:DescribeRegions and ec2:DescribeInstanceTypes. Fails, writing nothing, if a region fails or
// regions disagree on a type's limits.
//   npx tsx scripts/sweep-instance-types.ts [--out FILE] [--home-region REGION] [--previous FILE] [--no-generate]
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EC2Client } from '@aws-sdk/client-ec2';
import { type PreviousEntry, sweepAllRegions, toInstanceTypesJson } from '../lib/instance-types/sweep.js';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'lib/instance-types/instance-types.swept.json' },
    'home-region': {
      type: 'string',
      default: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    },
    previous: { type: 'string', default: 'lib/instance-types/seed/instance-types.json' },
    'no-generate': { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  const previous: Record<string, PreviousEntry> = existsSync(values.previous)
    ? JSON.parse(readFileSync(values.previous, 'utf8'))
    : {};
  const clients = new Map<string, EC2Client>();
  const clientFor = (region: string) => {
    let c = clients.get(region);
    if (!c) {
      c = new EC2Client({ region, maxAttempts: 5 });
      clients.set(region, c);
    }
    return c;
  };
  const merged = await sweepAllRegions({
    homeRegion: values['home-region'],
    clientFor,
    onRegionDone: (s) => console.error(`swept ${s.region}: ${s.types.length} instance types`),
  });
  writeFileSync(values.out, `${JSON.stringify(toInstanceTypesJson(merged, previous), null, 1)}\n`);
  console.error(`wrote ${merged.size} instance types to ${values.out}`);
  if (!values['no-generate']) {
    execFileSync(process.execPath, ['scripts/gen-instance-types.mjs', values.out], { stdio: 'inherit' });
  }
}

main().catch((err: Error) => {
  const hint =
    err.name === 'CredentialsProviderError' ? ' (no AWS credentials found; the table was not changed)' : '';
  console.error(`sweep-instance-types: ${err.message}${hint}`);
  process.exitCode = 1;
});
