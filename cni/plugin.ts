/**
 * The command handlers, read top to bottom as the story of a pod: ADD asks ipamd for an address and
 * wires the pod to it; DEL releases and unwires (best effort, idempotent); CHECK verifies; STATUS asks
 * ipamd whether it can serve; GC releases what the runtime no longer knows. Netlink detail lives in
 * plumbing.ts.
 */
import type { CniEnv, Command } from './env.js';
import { CniError, Code, describe } from './errors.js';
import { type IpamdApi, IpamdUnreachable } from './ipamd-client.js';
import type { Logger } from './log.js';
import type { NetConf } from './netconf.js';
import * as plumbing from './plumbing.js';
import { appendResult, formatResult, type Result } from './result.js';
import { hostVethName } from './veth-name.js';

/** What a handler works with besides the call itself: its log and the way to reach ipamd. */
export interface Context {
  log: Logger;
  ipamd: IpamdApi;
}

export type Handler = (env: CniEnv, conf: NetConf, ctx: Context) => Promise<unknown>;

function attachment(env: CniEnv, conf: NetConf) {
  return { network: conf.name, containerId: env.containerId, ifName: env.ifName };
}

async function cmdAdd(env: CniEnv, conf: NetConf, { log, ipamd }: Context): Promise<unknown> {
  // Refuse before asking ipamd: assignment is idempotent per attachment, so releasing after a
  // clash would take the address from the interface that already holds it.
  await plumbing.assertInterfaceAbsent(env.netns, env.ifName);

  const asked = performance.now();
  const alloc = await ipamd.add({
    ...attachment(env, conf),
    netns: env.netns,
    podNamespace: env.podNamespace,
    podName: env.podName,
  });
  const hostVeth = hostVethName(alloc.vethPrefix, env);
  log.info('address assigned', {
    address: alloc.address,
    eni: alloc.eniId,
    table: alloc.routeTable,
    hostVeth,
    ipamdMs: Math.round(performance.now() - asked),
  });

  let wired: plumbing.Wired;
  try {
    wired = await plumbing.wirePod({
      netns: env.netns,
      ifName: env.ifName,
      hostVeth,
      address: alloc.address,
      mtu: alloc.mtu,
      routeTable: alloc.routeTable,
      snat: alloc.snat.enabled,
      vpcCidrs: alloc.vpcCidrs,
      excludeSnatCidrs: alloc.snat.excludeCidrs,
    });
  } catch (err) {
    // wirePod undid its own steps; give the address back so it is not leaked.
    await ipamd
      .del(attachment(env, conf))
      .catch((e) => log.error('releasing after failed ADD', { err: describe(e) }));
    if (err instanceof CniError) throw err;
    throw new CniError(Code.setupFailed, `failed to wire pod interface ${env.ifName}`, describe(err));
  }

  const ours: Result = {
    interfaces: [
      { name: hostVeth, mac: wired.hostMac },
      { name: env.ifName, mac: wired.podMac, mtu: alloc.mtu, sandbox: env.netns },
    ],
    ips: [{ address: `${alloc.address}/32`, interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: plumbing.GATEWAY }],
    dns: {},
  };
  return formatResult(appendResult(conf.prevResult, ours), conf.cniVersion);
}

/**
 * Addresses and host veth a previous result names for this attachment. In a chain the result also
 * holds other plugins' interfaces: only the pod interface (ifName, in a sandbox), its addresses and
 * the host end this plugin lists right before it are ours.
 */
export function fromPrevResult(
  prev: Result | undefined,
  env: CniEnv,
): { addresses: string[]; hostVeths: string[] } {
  const none = { addresses: [], hostVeths: [] };
  if (!prev) return none;
  const podIndex = prev.interfaces.findIndex((i) => i.name === env.ifName && i.sandbox !== undefined);
  if (podIndex < 0) return none;
  const addresses = prev.ips
    .filter((ip) => ip.interface === podIndex)
    .map((ip) => ip.address.split('/')[0]!)
    .filter((a) => !a.includes(':'));
  const host = prev.interfaces[podIndex - 1];
  return { addresses, hostVeths: host && host.sandbox === undefined ? [host.name] : [] };
}

async function cmdDel(env: CniEnv, conf: NetConf, { log, ipamd }: Context): Promise<unknown> {
  const addresses = new Set<string>();
  let ipamdError: CniError | undefined;
  try {
    const released = await ipamd.del(attachment(env, conf));
    if (released.address) addresses.add(released.address);
    log.info('address released', { address: released.address });
  } catch (err) {
    if (!(err instanceof CniError)) throw err;
    ipamdError = err;
    log.warn('ipamd did not release the address', { err: err.message });
  }
  const prev = fromPrevResult(conf.prevResult, env);
  for (const a of prev.addresses) addresses.add(a);

  // The host veth is found from the pod end's peer or the address's /32 route; prevResult names it too.
  await plumbing.unwirePod({
    netns: env.netns,
    ifName: env.ifName,
    addresses: [...addresses],
    hostVeths: prev.hostVeths,
  });

  // Unreachable ipamd with a prevResult: the pod is unwired, ipamd's GC will reclaim the address.
  if (ipamdError && !(ipamdError instanceof IpamdUnreachable && conf.prevResult)) throw ipamdError;
  return undefined;
}

async function cmdCheck(env: CniEnv, conf: NetConf): Promise<unknown> {
  const prev = conf.prevResult;
  if (!prev) {
    throw new CniError(
      Code.invalidConfig,
      'CHECK needs prevResult',
      'the runtime must pass the result of ADD',
    );
  }
  const pod = prev.interfaces.find((i) => i.name === env.ifName && i.sandbox === env.netns);
  if (!pod) {
    throw new CniError(Code.checkFailed, `prevResult has no interface ${env.ifName} in ${env.netns}`);
  }
  const { addresses, hostVeths } = fromPrevResult(prev, env);
  const address = addresses[0];
  if (!address) throw new CniError(Code.checkFailed, `prevResult has no IPv4 address for ${env.ifName}`);
  const problems = await plumbing.checkPod({
    netns: env.netns,
    ifName: env.ifName,
    address,
    podMac: pod.mac,
    mtu: pod.mtu,
    hostVeths,
  });
  if (problems.length > 0) {
    throw new CniError(
      Code.checkFailed,
      `pod network of ${env.ifName} is not as ADD left it`,
      problems.join('; '),
    );
  }
  return undefined;
}

async function cmdStatus(_env: CniEnv, _conf: NetConf, { ipamd }: Context): Promise<unknown> {
  let health: Awaited<ReturnType<IpamdApi['health']>>;
  try {
    health = await ipamd.health();
  } catch (err) {
    throw new CniError(Code.pluginNotAvailable, 'ipamd is not available', describe(err));
  }
  if (!health.ready) {
    throw new CniError(
      Code.pluginNotAvailable,
      'ipamd is not ready',
      `${health.reason ?? 'no reason given'} (${health.freeAddresses} free addresses)`,
    );
  }
  return undefined;
}

async function cmdGc(_env: CniEnv, conf: NetConf, { log, ipamd }: Context): Promise<unknown> {
  if (!conf.validAttachments) {
    throw new CniError(
      Code.invalidConfig,
      'GC needs "cni.dev/valid-attachments"',
      'refusing to release every address of the network without the list of attachments still in use',
    );
  }
  const { released } = await ipamd.gc({ network: conf.name, valid: conf.validAttachments });
  log.info('gc released', { released });
  const failures: string[] = [];
  for (const r of released) {
    await plumbing
      .removeHostLeftovers(r.address)
      .catch((err) => failures.push(`${r.address}: ${describe(err)}`));
  }
  if (failures.length > 0) {
    throw new CniError(
      Code.teardownFailed,
      'GC released addresses but left host routing behind',
      failures.join('; '),
    );
  }
  return undefined;
}

export const handlers: Record<Exclude<Command, 'VERSION'>, Handler> = {
  ADD: cmdAdd,
  DEL: cmdDel,
  CHECK: cmdCheck,
  STATUS: cmdStatus,
  GC: cmdGc,
};
