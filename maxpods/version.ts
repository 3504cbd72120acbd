/** The CNI version flag: which VPC CNI releases can hand out /28 prefixes. */
import { UsageError } from './errors.js';

export interface CniVersion {
  raw: string;
  major: number;
  minor: number;
  patch: number | null;
}

// 1.7, 1.7.5, v1.18.3, v1.18.3-eksbuild.1 (the EKS add-on's spelling).
const VERSION = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]+)?$/;

export function parseCniVersion(raw: string): CniVersion {
  const m = VERSION.exec(raw.trim());
  if (!m) {
    throw new UsageError(
      `--cni-version ${JSON.stringify(raw)} is not a version; use MAJOR.MINOR[.PATCH], e.g. 1.18.3 or v1.18.3-eksbuild.1`,
    );
  }
  return {
    raw,
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: m[3] === undefined ? null : Number(m[3]),
  };
}

/** As the EKS AMI decides it: newer than 1.8 by number (1.9.0 and 1.10.0 yes, 1.8.x no). */
export function cniSupportsPrefixDelegation(v: CniVersion): boolean {
  return v.major > 1 || (v.major === 1 && v.minor > 8);
}
