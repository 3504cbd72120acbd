/**
 * Fixed addresses of the fabric. The link-local ones are where a real instance finds IMDS and
 * (in this VPC) the EC2 endpoint; the "internet" uses a documentation range (RFC 5737) so nothing
 * in it can ever mean a real host.
 */
import { formatIpv4, parseCidr } from '../ec2/ipv4.js';

export const IMDS_ADDRESS = '169.254.169.254';
/** The EC2 API endpoint as seen from inside instances (http://169.254.169.253). */
export const EC2_ADDRESS = '169.254.169.253';
/** Both emulators answer on port 80 in the router namespace, as IMDS does on a real instance. */
export const ROUTER_HTTP_PORT = 80;

export const INET_CIDR = '198.51.100.0/24';
export const INET_ROUTER_ADDRESS = '198.51.100.1';
export const INET_HOST_ADDRESS = '198.51.100.10';
/** The internet host's echo server (answers with the source address it saw) listens here. */
export const INET_HTTP_PORT = 80;

/** Instances' ENIs have a 9001-byte MTU (jumbo frames inside a VPC). */
export const ENI_MTU = 9001;

/** The VPC router's address in a subnet: the first usable one (network + 1), as in EC2. */
export function subnetGateway(subnetCidr: string): string {
  const c = parseCidr(subnetCidr);
  return formatIpv4(c.base + 1);
}

export function subnetPrefixLength(subnetCidr: string): number {
  return parseCidr(subnetCidr).prefixLength;
}

/** `::ffff:10.0.1.5` (a v4 peer on a dual-stack socket) -> `10.0.1.5`. */
export function plainIpv4(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
