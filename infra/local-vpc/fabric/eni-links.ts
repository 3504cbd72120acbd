/**
 * One attached ENI = one veth pair: the router end in the router namespace (holding the subnet's
 * gateway address, so ARP for the gateway is answered on it, and a permanent neighbour entry for
 * the ENI's primary address, through which the router delivers every address of the ENI), the instance end in the instance
 * namespace named eth<device index> with the ENI's MAC. Only the primary ENI is configured, as
 * cloud-init/DHCP does on a real instance; secondary ENIs arrive down and without an address.
 */
import { ENI_MTU, subnetGateway, subnetPrefixLength } from './addresses.js';
import type { AttachedEniView } from './model.js';
import { instanceEniLinkName } from './names.js';

/** What the fabric created for one attached ENI. */
export interface EniLink {
  eniId: string;
  routerLink: string;
  instanceLink: string;
  mac: string;
}

export function isPrimaryEni(eni: AttachedEniView): boolean {
  return eni.primary;
}

/** Router-namespace batch lines that create the pair (the peer goes straight into `instanceNs`). */
export function createEniLinkLines(eni: AttachedEniView, routerLink: string, instanceNs: string): string[] {
  const instanceLink = instanceEniLinkName(eni.deviceIndex, eni.networkCardIndex);
  return [
    `link add ${routerLink} mtu ${ENI_MTU} type veth peer name ${instanceLink} netns ${instanceNs} address ${eni.mac} mtu ${ENI_MTU}`,
    `address add ${subnetGateway(eni.subnetCidr)}/32 dev ${routerLink}`,
    // Proxy ARP replies to broadcasts are otherwise delayed up to 0.8 s at random; the VPC's are not.
    // (Per link: a non-initial namespace has no neigh "default" sysctls.)
    `ntable change name arp_cache dev ${routerLink} proxy_delay 0`,
    `link set ${routerLink} up`,
    // The router knows the ENI's MAC, as the VPC does; it never ARPs toward instances.
    `neigh replace ${eni.primaryIp} lladdr ${eni.mac} dev ${routerLink} nud permanent`,
  ];
}

/** Instance-namespace batch lines that configure the primary ENI like DHCP would. */
export function configurePrimaryLines(eni: AttachedEniView): string[] {
  const link = instanceEniLinkName(eni.deviceIndex, eni.networkCardIndex);
  return [
    `address add ${eni.primaryIp}/${subnetPrefixLength(eni.subnetCidr)} dev ${link}`,
    `link set ${link} up`,
    `route add default via ${subnetGateway(eni.subnetCidr)} dev ${link}`,
  ];
}
