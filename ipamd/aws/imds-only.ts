/**
 * ENABLE_IMDS_ONLY_MODE (the reference's): ipamd makes no EC2 call. Attached ENIs are what IMDS shows
 * at start, and the EC2 transport refuses every call so none can slip through.
 */
import type { Ec2Eni, Ec2Transport } from './ec2.js';
import type { ImdsEni } from './imds.js';

/** An attached ENI as IMDS shows it (no tags: none is no_manage). */
export function fromImds(e: ImdsEni): Ec2Eni {
  return {
    id: e.id,
    mac: e.mac,
    status: 'in-use',
    subnetId: e.subnetId,
    vpcId: e.vpcId,
    primaryIp: e.primaryIp,
    secondaryIps: e.secondaryIps,
    prefixes: e.prefixes,
    attachment: null,
    tags: {},
    securityGroups: e.securityGroups,
  };
}

/** An EC2 transport that refuses every call. */
export function imdsOnlyTransport(): Ec2Transport {
  return {
    send: (action: string) =>
      Promise.reject(new Error(`ENABLE_IMDS_ONLY_MODE=true: ipamd makes no EC2 call (${action})`)),
  } as unknown as Ec2Transport;
}
