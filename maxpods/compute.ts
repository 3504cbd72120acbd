/**
 * The max-pods arithmetic of the EKS AMI's max-pods-calculator.sh, plus the trunk-ENI reservation.
 * Pure: limits and options in, every step of the derivation out, so the CLI can print it and tests can
 * check each step.
 */
import {
  type InstanceTypeLimits,
  reportsNitroHypervisor,
  supportsPrefixDelegation,
} from '../lib/instance-types/index.js';
import { type CniVersion, cniSupportsPrefixDelegation } from './version.js';

/** Addresses a /28 prefix gives pods. */
export const IPS_PER_PREFIX = 16;
/** kubelet ceilings the AMI applies to the recommended value. */
export const CAP_LOW_CPU = 110;
export const CAP_HIGH_CPU = 250;
/** Above this many vCPUs the high ceiling applies. */
export const LOW_CPU_MAX_VCPUS = 30;

export interface MaxPodsOptions {
  cniVersion: CniVersion;
  customNetworking: boolean;
  prefixDelegation: boolean;
  /** `--cni-max-eni`: caps the ENIs used for pods; undefined for all of them. */
  maxEni?: number;
  /** Reserve one ENI for the trunk interface of security groups for pods. */
  trunk: boolean;
}

export type Mode = 'secondary-ip' | 'prefix-delegation';

/** Why an asked-for feature did not apply; printed to stderr, never on stdout. */
export interface Fallback {
  kind: 'prefix-delegation' | 'trunk' | 'no-pod-enis';
  message: string;
}

export interface MaxPodsResult {
  instanceType: string;
  limits: InstanceTypeLimits;
  mode: Mode;
  /** ENIs whose addresses serve pods, after the max-ENI cap and the ENIs other uses take. */
  enisForPods: number;
  /** Pod addresses each of those ENIs gives: (ipv4PerEni - 1), times 16 with prefixes. */
  podAddressesPerEni: number;
  /** The uncapped value (`--show-max-allowed`). */
  maxAllowed: number;
  /** 110 or 250 by vCPUs; null when the vCPU count is unknown. */
  cap: number | null;
  /** min(cap, maxAllowed); null when the vCPU count is unknown. */
  recommended: number | null;
  formula: string;
  fallbacks: Fallback[];
}

export function computeMaxPods(limits: InstanceTypeLimits, opts: MaxPodsOptions): MaxPodsResult {
  const fallbacks: Fallback[] = [];
  const name = limits.name;

  let enisForPods = opts.maxEni === undefined ? limits.enis : Math.min(opts.maxEni, limits.enis);
  // Custom networking puts pods on other subnets, so the primary ENI carries none of them.
  if (opts.customNetworking) enisForPods -= 1;
  if (opts.trunk) {
    // The trunk ENI exists only on Nitro (the VPC resource controller attaches it); elsewhere no slot is taken.
    if (supportsPrefixDelegation(limits)) enisForPods -= 1;
    else {
      fallbacks.push({
        kind: 'trunk',
        message: `${name} is not a Nitro instance type, so no trunk ENI is attached (security groups for pods need Nitro); no ENI reserved`,
      });
    }
  }
  if (enisForPods < 0) enisForPods = 0;
  if (enisForPods === 0) {
    fallbacks.push({
      kind: 'no-pod-enis',
      message: `${name}: no ENI is left for pods after the options given; only host-network pods fit`,
    });
  }

  let mode: Mode = 'secondary-ip';
  if (opts.prefixDelegation) {
    const versionOk = cniSupportsPrefixDelegation(opts.cniVersion);
    const nitro = reportsNitroHypervisor(limits);
    if (versionOk && nitro) mode = 'prefix-delegation';
    else {
      const why = !versionOk
        ? `CNI version ${opts.cniVersion.raw} is not newer than 1.8`
        : `${name} is not a Nitro instance type (hypervisor: ${limits.hypervisor})`;
      fallbacks.push({
        kind: 'prefix-delegation',
        message: `prefix delegation not used for ${name}: ${why}; using secondary-IP mode`,
      });
    }
  }

  const secondaryPerEni = limits.ipv4PerEni - 1;
  const podAddressesPerEni =
    mode === 'prefix-delegation' ? secondaryPerEni * IPS_PER_PREFIX : secondaryPerEni;
  const maxAllowed = enisForPods * podAddressesPerEni + 2;
  const formula =
    mode === 'prefix-delegation'
      ? `${enisForPods} * ((${limits.ipv4PerEni} - 1) * ${IPS_PER_PREFIX}) + 2 = ${maxAllowed}`
      : `${enisForPods} * (${limits.ipv4PerEni} - 1) + 2 = ${maxAllowed}`;

  const cap = limits.vcpus === null ? null : limits.vcpus > LOW_CPU_MAX_VCPUS ? CAP_HIGH_CPU : CAP_LOW_CPU;
  const recommended = cap === null ? null : Math.min(cap, maxAllowed);

  return {
    instanceType: name,
    limits,
    mode,
    enisForPods,
    podAddressesPerEni,
    maxAllowed,
    cap,
    recommended,
    formula,
    fallbacks,
  };
}
