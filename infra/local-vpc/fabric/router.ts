/**
 * The VPC router namespace and the "internet" host behind it.
 *
 * Router: forwards between ENI veths; proxy ARP on every ENI link answers for the gateway and for
 * any address routed elsewhere; strict reverse-path filtering against the per-ENI /32 and /28
 * routes is the source/destination check (a packet whose source is not routed back out of the
 * link it came in on is dropped). The emulators' addresses live on its loopback, and IMDS's token
 * answers carry each instance's hop limit as their TTL (imds-hops.ts).
 *
 * Internet host: one veth to the router, a documentation-range address, and an nftables input
 * filter that accepts only instances' primary addresses (standing in for public-IP mapping, so a
 * pod address that was not SNATed goes nowhere, as behind a real internet gateway).
 */
import { EC2_ADDRESS, IMDS_ADDRESS, INET_CIDR, INET_HOST_ADDRESS, INET_ROUTER_ADDRESS } from './addresses.js';
import { imdsHopRulesScript, imdsHopTableScript } from './imds-hops.js';
import { ipBatch, mustRun } from './shell.js';
import { setSysctls } from './sysctl.js';

/** Router-side link toward the internet host. */
export const ROUTER_INET_LINK = 'inet0';

const NFT_TABLE = 'localvpc';
const NFT_SET = 'primaries';

/** Creates a namespace with lo up; `created` (if given) learns its name once it exists. */
export async function createNetns(name: string, created?: string[]): Promise<void> {
  await mustRun('ip', ['netns', 'add', name]);
  created?.push(name);
  await ipBatch(name, ['link set lo up']);
}

export async function setUpRouter(routerNs: string, created: string[]): Promise<void> {
  await createNetns(routerNs, created);
  // "default" applies to links created later (the ENI veths); "all" makes rp_filter strict everywhere.
  await setSysctls(routerNs, {
    'net.ipv4.ip_forward': 1,
    'net.ipv4.conf.all.rp_filter': 1,
    'net.ipv4.conf.default.rp_filter': 1,
    'net.ipv4.conf.default.proxy_arp': 1,
    'net.ipv4.conf.all.send_redirects': 0,
    'net.ipv4.conf.default.send_redirects': 0,
    'net.ipv6.conf.default.disable_ipv6': 1,
  });
  await ipBatch(routerNs, [`address add ${IMDS_ADDRESS}/32 dev lo`, `address add ${EC2_ADDRESS}/32 dev lo`]);
  await mustRun('ip', ['netns', 'exec', routerNs, 'nft', '-f', '-'], imdsHopTableScript());
}

/** Sets the TTL of IMDS's token answers per router link (link -> its instance's hop limit). */
export async function setImdsHopLimits(
  routerNs: string,
  hopLimits: ReadonlyMap<string, number>,
): Promise<void> {
  await mustRun('ip', ['netns', 'exec', routerNs, 'nft', '-f', '-'], imdsHopRulesScript(hopLimits));
}

export async function setUpInternetHost(routerNs: string, inetNs: string, created: string[]): Promise<void> {
  await createNetns(inetNs, created);
  await setSysctls(inetNs, { 'net.ipv6.conf.default.disable_ipv6': 1, 'net.ipv6.conf.all.disable_ipv6': 1 });
  const len = INET_CIDR.split('/')[1];
  await ipBatch(routerNs, [
    `link add ${ROUTER_INET_LINK} type veth peer name eth0 netns ${inetNs}`,
    `address add ${INET_ROUTER_ADDRESS}/${len} dev ${ROUTER_INET_LINK}`,
    `link set ${ROUTER_INET_LINK} up`,
  ]);
  await ipBatch(inetNs, [
    `address add ${INET_HOST_ADDRESS}/${len} dev eth0`,
    'link set eth0 up',
    `route add default via ${INET_ROUTER_ADDRESS}`,
  ]);
  await mustRun(
    'ip',
    ['netns', 'exec', inetNs, 'nft', '-f', '-'],
    [
      `table ip ${NFT_TABLE} {`,
      `  set ${NFT_SET} { type ipv4_addr; }`,
      '  chain input {',
      '    type filter hook input priority 0; policy drop;',
      '    iif "lo" accept',
      `    ip saddr @${NFT_SET} accept`,
      '  }',
      '}',
      '',
    ].join('\n'),
  );
}

/** Replaces the internet host's allow-list with `primaries` in one nft transaction. */
export async function setInternetAllowList(inetNs: string, primaries: readonly string[]): Promise<void> {
  const lines = [`flush set ip ${NFT_TABLE} ${NFT_SET}`];
  if (primaries.length > 0) lines.push(`add element ip ${NFT_TABLE} ${NFT_SET} { ${primaries.join(', ')} }`);
  await mustRun('ip', ['netns', 'exec', inetNs, 'nft', '-f', '-'], `${lines.join('\n')}\n`);
}
