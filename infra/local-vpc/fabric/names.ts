/**
 * Names of everything the fabric creates. Every namespace carries the run's prefix
 * (`vpccni-<runid>`) so parallel runs never collide and `cleanup --prefix` finds a crashed run's
 * leftovers by name alone.
 */
import { randomBytes } from 'node:crypto';

/** The namespace-name prefix every local VPC uses; tests and the cleanup rely on it. */
export const PREFIX_ROOT = 'vpccni';

/** `vpccni-<runid>`: runid is lowercase letters/digits, short enough to keep names readable. */
const PREFIX_RE = /^vpccni-[a-z0-9]{1,24}$/;

/** A fresh prefix unique to this process and call: pid in base 36 plus random bits. */
export function newPrefix(): string {
  return `${PREFIX_ROOT}-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
}

/** Throws a specific error unless `prefix` has the `vpccni-<runid>` shape. */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) {
    throw new Error(
      `invalid local VPC prefix ${JSON.stringify(prefix)}: expected "vpccni-<runid>" where runid is 1-24 lowercase letters or digits`,
    );
  }
  return prefix;
}

/** True when namespace `name` belongs to the run with `prefix` (not merely starts with the same text). */
export function belongsToPrefix(name: string, prefix: string): boolean {
  return name === prefix || name.startsWith(`${prefix}-`);
}

export function routerNetnsName(prefix: string): string {
  return `${prefix}-vpc`;
}

export function inetNetnsName(prefix: string): string {
  return `${prefix}-inet`;
}

/**
 * The instance namespace: `<prefix>-i-<last 8 hex digits of the id>`; the full id when the short
 * form is already taken in this run (ids differing only in their first digits).
 */
export function instanceNetnsName(prefix: string, instanceId: string, taken: ReadonlySet<string>): string {
  if (!/^i-[0-9a-f]{8,17}$/.test(instanceId)) {
    throw new Error(`invalid instance id ${JSON.stringify(instanceId)}: expected i- followed by hex digits`);
  }
  const short = `${prefix}-i-${instanceId.slice(-8)}`;
  return taken.has(short) ? `${prefix}-${instanceId}` : short;
}

/** Router-side veth of the n-th ENI link of the run (`ve<n>`); well under the 15-character limit. */
export function routerEniLinkName(n: number): string {
  return `ve${n}`;
}

export const ROUTER_ENI_LINK_RE = /^ve\d+$/;

/**
 * The instance end of an ENI is named as on a real instance: eth<device index>. Device indexes
 * restart on every network card, so ENIs on other cards get `c<card>eth<device index>`.
 */
export function instanceEniLinkName(deviceIndex: number, networkCardIndex = 0): string {
  return networkCardIndex === 0 ? `eth${deviceIndex}` : `c${networkCardIndex}eth${deviceIndex}`;
}
