/**
 * Limits from EC2's DescribeInstanceTypes: the run-time fallback for types the generated table does not
 * know yet (ipamd on a brand-new type), and the converter the live sweep uses to rebuild the table.
 * Kept apart from index.ts so the calculator bundle does not pull in the AWS SDK.
 */
import {
  DescribeInstanceTypesCommand,
  type DescribeInstanceTypesCommandOutput,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { InstanceTypeDataError, limitsFromInstanceTypeInfo } from './from-ec2.js';
import { lookupInstanceType } from './index.js';
import type { InstanceTypeLimits } from './types.js';

export { InstanceTypeDataError, limitsFromInstanceTypeInfo } from './from-ec2.js';

const described = new Map<string, InstanceTypeLimits>();

/**
 * Limits for a type: the generated table first, then one DescribeInstanceTypes call (remembered for the
 * life of the process). Throws a clear error when EC2 does not know the type either.
 */
export async function resolveInstanceType(name: string, ec2: EC2Client): Promise<InstanceTypeLimits> {
  const known = lookupInstanceType(name) ?? described.get(name);
  if (known) return known;
  let reply: DescribeInstanceTypesCommandOutput;
  try {
    reply = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: [name as never] }));
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e.name === 'InvalidInstanceType') {
      throw new InstanceTypeDataError(
        `EC2 does not know instance type ${JSON.stringify(name)}: ${e.message}`,
      );
    }
    throw new InstanceTypeDataError(
      `DescribeInstanceTypes for ${name} failed (${e.name ?? 'error'}: ${e.message ?? String(err)}); ` +
        'check the instance role allows ec2:DescribeInstanceTypes and the EC2 endpoint is reachable',
    );
  }
  const info = reply.InstanceTypes?.find((t) => t.InstanceType === name);
  if (!info) {
    throw new InstanceTypeDataError(`DescribeInstanceTypes returned no entry for instance type ${name}`);
  }
  const limits = limitsFromInstanceTypeInfo(info);
  described.set(name, limits);
  return limits;
}
