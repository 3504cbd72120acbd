// The sweep's EC2 half over the real wire: the AWS SDK, paginating DescribeInstanceTypes against the local
// VPC's EC2 emulator (which serves the generated table), must give back the seed table exactly.
import { readFileSync } from 'node:fs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ec2Server, startEc2Server } from '../../../infra/local-vpc/ec2/server.js';
import { Ec2State } from '../../../infra/local-vpc/ec2/state.js';
import { mergeRegionSweeps, sweepRegion, toInstanceTypesJson } from '../../../lib/instance-types/sweep.js';
import type { InstanceTypeJson, InstanceTypeJsonEntry } from '../../../scripts/gen-instance-types.mjs';

let server: Ec2Server;
const client = (region: string) =>
  new EC2Client({
    region,
    endpoint: server.url,
    credentials: { accessKeyId: 'AKIDSWEEPTEST', secretAccessKey: 'secret' },
  });

beforeAll(async () => {
  server = await startEc2Server({ state: new Ec2State({ region: 'us-west-2' }) });
});
afterAll(async () => {
  await server?.close();
});

describe('sweep against the EC2 emulator', () => {
  it('round-trips all 1391 types through DescribeInstanceTypes pages', async () => {
    const a = await sweepRegion('us-west-2', client('us-west-2'));
    const b = await sweepRegion('eu-west-1', client('eu-west-1'));
    expect(a.types).toHaveLength(1391);
    expect(server.calls.count('DescribeInstanceTypes')).toBe(2 * 14); // 1391 types, 100 a page, two regions
    const seed = JSON.parse(
      readFileSync('lib/instance-types/seed/instance-types.json', 'utf8'),
    ) as InstanceTypeJson;
    const swept = toInstanceTypesJson(mergeRegionSweeps([a, b]), seed) as InstanceTypeJson;
    const strip = (t: InstanceTypeJsonEntry) => {
      const { vcpusSource: _source, ...rest } = t;
      return rest;
    };
    expect(Object.keys(swept)).toEqual(Object.keys(seed).sort());
    for (const name of Object.keys(seed)) expect(strip(swept[name]!), name).toEqual(strip(seed[name]!));
  });
});
