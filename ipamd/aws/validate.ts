/** Checks for values ipamd reads from IMDS and EC2 replies: a bad one stops with a message naming it. */
import { isIpv4Cidr } from '../config.js';

export class MalformedReplyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedReplyError';
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const ENI_ID = /^eni-[0-9a-f]{1,32}$/;

function fail(what: string, value: unknown, expected: string): never {
  throw new MalformedReplyError(`malformed ${what}: ${JSON.stringify(value)} is not ${expected}`);
}

export function assertIpv4(v: unknown, what: string): string {
  if (typeof v !== 'string' || !IPV4.test(v)) fail(what, v, 'an IPv4 address');
  return v;
}

export function assertCidr(v: unknown, what: string): string {
  if (typeof v !== 'string' || !isIpv4Cidr(v)) fail(what, v, 'an IPv4 CIDR');
  return v;
}

export function assertMac(v: unknown, what: string): string {
  const s = typeof v === 'string' ? v.toLowerCase() : v;
  if (typeof s !== 'string' || !MAC.test(s)) fail(what, v, 'a MAC address (aa:bb:cc:dd:ee:ff)');
  return s;
}

export function assertEniId(v: unknown, what: string): string {
  if (typeof v !== 'string' || !ENI_ID.test(v)) fail(what, v, 'an ENI id (eni-...)');
  return v;
}

export function assertInt(v: unknown, what: string, min: number, max: number): number {
  const s = typeof v === 'string' ? v.trim() : v;
  if (typeof s !== 'string' || !/^\d+$/.test(s) || Number(s) < min || Number(s) > max) {
    fail(what, v, `a whole number between ${min} and ${max}`);
  }
  return Number(s);
}
