/**
 * The test cluster's parameters, from CDK context (`cdk synth -c instanceType=c5.xlarge ...` or
 * cdk.json). Context values arrive as strings from the command line and as JSON from cdk.json, so
 * each is parsed here with a message that names the parameter and what it accepts.
 */
import { lookupInstanceType, supportsPrefixDelegation } from '../lib/instance-types/index.js';

export interface ClusterParams {
  clusterName: string;
  region: string;
  /** Availability zones; one node subnet, one pod subnet and one node group per zone. */
  zones: string[];
  instanceType: string;
  /** Nodes in total, spread over the zones. */
  nodeCount: number;
  prefixDelegation: boolean;
  customNetworking: boolean;
  kubernetesVersion: string;
  /** A prebuilt vpc-cni image; empty: build infra/image/Dockerfile as a CDK asset. */
  image: string;
  /** Where the built bundles are (npm run build). */
  distDir: string;
}

export type ContextReader = (key: string) => unknown;

export class ParamsError extends Error {
  constructor(problems: string[]) {
    super(`invalid CDK context:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ParamsError';
  }
}

/** Kubernetes versions this app has a kubectl layer for (see stack.ts). */
export const SUPPORTED_KUBERNETES_VERSIONS = ['1.33'];

export function readParams(ctx: ContextReader, env: NodeJS.ProcessEnv = process.env): ClusterParams {
  const problems: string[] = [];
  const str = (key: string, dflt: string): string => {
    const v = ctx(key);
    if (v === undefined || v === null || v === '') return dflt;
    if (typeof v !== 'string') {
      problems.push(`${key} must be a string, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  const bool = (key: string): boolean => {
    const v = ctx(key);
    if (v === undefined || v === null || v === '') return false;
    if (v === true || v === 'true') return true;
    if (v === false || v === 'false') return false;
    problems.push(`${key} must be true or false, got ${JSON.stringify(v)}`);
    return false;
  };

  const instanceType = str('instanceType', 'm5.large');
  const limits = lookupInstanceType(instanceType);
  if (!limits) problems.push(`instanceType ${JSON.stringify(instanceType)} is not a known EC2 instance type`);

  const rawCount = ctx('nodeCount') ?? 2;
  const nodeCount = typeof rawCount === 'number' ? rawCount : Number(rawCount);
  if (
    !Number.isInteger(nodeCount) ||
    nodeCount < 1 ||
    nodeCount > 50 ||
    (typeof rawCount === 'string' && !/^\d+$/.test(rawCount))
  ) {
    problems.push(`nodeCount must be a whole number from 1 to 50, got ${JSON.stringify(rawCount)}`);
  }

  const prefixDelegation = bool('prefixDelegation');
  if (prefixDelegation && limits && !supportsPrefixDelegation(limits)) {
    problems.push(`prefixDelegation needs a Nitro instance type; ${instanceType} is not one`);
  }
  const customNetworking = bool('customNetworking');

  const region = str('region', env.CDK_DEFAULT_REGION || 'us-east-1');
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region))
    problems.push(`region ${JSON.stringify(region)} is not an AWS region name`);
  const zonesRaw = str('availabilityZones', `${region}a,${region}b`);
  const zones = zonesRaw
    .split(',')
    .map((z) => z.trim())
    .filter(Boolean);
  for (const z of zones) {
    if (!z.startsWith(region) || !/^[a-z]$/.test(z.slice(region.length))) {
      problems.push(`availability zone ${JSON.stringify(z)} is not a zone of ${region} (like ${region}a)`);
    }
  }
  if (zones.length < 2 || zones.length > 3)
    problems.push('availabilityZones must list 2 or 3 zones (EKS needs two)');

  const kubernetesVersion = str('kubernetesVersion', SUPPORTED_KUBERNETES_VERSIONS[0]!);
  if (!SUPPORTED_KUBERNETES_VERSIONS.includes(kubernetesVersion)) {
    problems.push(
      `kubernetesVersion must be one of ${SUPPORTED_KUBERNETES_VERSIONS.join(', ')}, got ${kubernetesVersion}`,
    );
  }
  const clusterName = str('clusterName', 'vpc-cni-test');
  if (!/^[A-Za-z][A-Za-z0-9-]{0,99}$/.test(clusterName))
    problems.push(`clusterName ${JSON.stringify(clusterName)} is not a valid EKS cluster name`);

  const params: ClusterParams = {
    clusterName,
    region,
    zones,
    instanceType,
    nodeCount,
    prefixDelegation,
    customNetworking,
    kubernetesVersion,
    image: str('image', ''),
    distDir: str('distDir', new URL('../dist', import.meta.url).pathname),
  };
  if (problems.length > 0) throw new ParamsError(problems);
  return params;
}

/** Nodes per zone: the total spread as evenly as it goes, earlier zones taking the remainder. */
export function nodesPerZone(p: Pick<ClusterParams, 'nodeCount' | 'zones'>): number[] {
  const base = Math.floor(p.nodeCount / p.zones.length);
  return p.zones.map((_, i) => base + (i < p.nodeCount % p.zones.length ? 1 : 0));
}
