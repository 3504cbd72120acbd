/**
 * The IMDS hop limit (HttpPutResponseHopLimit), modelled as EC2 does it: the packets of IMDS's
 * answer to a token request (PUT) carry IP TTL = the instance's hop limit. With 1 the answer
 * reaches the instance's own network stack (local delivery keeps the TTL) but dies on the first
 * forward, so a pod routed behind the instance gets no answer; with 2 it gets one.
 *
 * nftables in the router namespace: `input` marks a connection whose request starts with "PUT "
 * (ct mark bit PUT_MARK), and `postrouting` sets the TTL of IMDS's packets on such connections by
 * the router link they leave through (each ENI's link belongs to one instance). The emulator's GET
 * answers keep the normal TTL, as IMDSv1 answers do on EC2.
 */
import { IMDS_ADDRESS, ROUTER_HTTP_PORT } from './addresses.js';

export const IMDS_NFT_TABLE = 'localvpc_imds';
const PUT_MARK = '0x00000001';
/** "PUT " in ASCII: the first four bytes of the request's TCP payload. */
const PUT_BYTES = '0x50555420';

/** The table with its marking rule and an empty TTL chain (`nft -f -` input). */
export function imdsHopTableScript(): string {
  return [
    `table ip ${IMDS_NFT_TABLE} {`,
    '  chain mark_put {',
    '    type filter hook input priority 0; policy accept;',
    `    ip daddr ${IMDS_ADDRESS} tcp dport ${ROUTER_HTTP_PORT} @ih,0,32 ${PUT_BYTES} ct mark set ct mark | ${PUT_MARK}`,
    '  }',
    '  chain hop_limit {',
    '    type filter hook postrouting priority 0; policy accept;',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The `nft -f -` script that makes the TTL rules match `hopLimits` (router link -> hop limit):
 * one rule per distinct limit, naming its links.
 */
export function imdsHopRulesScript(hopLimits: ReadonlyMap<string, number>): string {
  const byLimit = new Map<number, string[]>();
  for (const [link, limit] of hopLimits) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 255) {
      throw new Error(`IMDS hop limit for ${link} must be 1-255, got ${limit}`);
    }
    byLimit.set(limit, [...(byLimit.get(limit) ?? []), link]);
  }
  const lines = [`flush chain ip ${IMDS_NFT_TABLE} hop_limit`];
  for (const [limit, links] of [...byLimit].sort((a, b) => a[0] - b[0])) {
    const names = links
      .sort()
      .map((l) => `"${l}"`)
      .join(', ');
    lines.push(
      `add rule ip ${IMDS_NFT_TABLE} hop_limit ip saddr ${IMDS_ADDRESS} tcp sport ${ROUTER_HTTP_PORT} ct mark and ${PUT_MARK} == ${PUT_MARK} oifname { ${names} } ip ttl set ${limit}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
