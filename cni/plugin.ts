/**
 * The command handlers, read top to bottom as the story of a pod: ADD asks ipamd for an address and
 * wires the pod to it; DEL releases and unwires (best effort, idempotent); CHECK verifies; STATUS asks
 * ipamd whether it can serve; GC releases what the runtime no longer knows. Netlink detail lives in
 * plumbing.ts.
 */
import type { DelResult } from '../lib/protocol/ipamd.js';
import type { CniEnv, Command } from './env.js';
import { CniError, Code, describe } from './errors.js';
import { type IpamdApi, IpamdUnreachable } from './ipamd-client.js';
import type { Logger } from './log.js';
import type { NetConf } from './netconf.js';
import * as plumbing from './plumbing.js';
import { invalidNetns, type NetnsSource, type NoNetns, type PodNetns } from './podns.js';
import { appendResult, formatResult, type Result } from './result.js';
import { hostVethName } from './veth-name.js';

/**
 * What a handler works with besides the call itself: its log, the way to reach ipamd, and the way
 * to reach the pod's namespace (by path in the plugin process, by a passed socket inside ipamd).
 */
export interface Context {
  log: Logger;
  ipamd: IpamdApi;
  netns: NetnsSource;
}

/** Runs `fn` with the pod's namespace open, closing it afterwards whatever happens. */
async function withPod<T>(
  source: NetnsSource,
  path: string,
  fn: (pod: PodNetns | NoNetns) => Promise<T>,
): Promise<T> {
  const pod = path ? source.open(path) : ({ gone: true, reason: 'CNI_NETNS was not given' } as const);
  try {
    return await fn(pod);
  } finally {
    if (!('gone' in pod)) pod.close();
  }
}

function required(pod: PodNetns | NoNetns, path: string): PodNetns {
  if ('gone' in pod) throw invalidNetns(path, pod.reason);
  return pod;
}

export type Handler = (env: CniEnv, conf: NetConf, ctx: Context) => Promise<unknown>;

function attachment(env: CniEnv, conf: NetConf) {
  return { network: conf.name, containerId: env.containerId, ifName: env.ifName };
}

function cmdAdd(env: CniEnv, conf: NetConf, ctx: Context): Promise<unknown> {
  return withPod(ctx.netns, env.netns, (pod) => add(env, conf, ctx, required(pod, env.netns)));
}

async function add(env: CniEnv, conf: NetConf, { log, ipamd }: Context, pod: PodNetns): Promise<unknown> {
  // Refuse before asking ipamd: assignment is idempotent per attachment, so releasing after a
  // clash would take the address from the interface that already holds it.
  await plumbing.assertInterfaceAbsent(pod, env.ifName);

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
      pod,
      ifName: env.ifName,
      hostVeth,
      hostMac: alloc.hostVethMac,
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
): { addresses: string[]; hostVeths: string[]; hostVethMac?: string } {
  const none = { addresses: [], hostVeths: [] };
  if (!prev) return none;
  const podIndex = prev.interfaces.findIndex((i) => i.name === env.ifName && i.sandbox !== undefined);
  if (podIndex < 0) return none;
  const addresses = prev.ips
    .filter((ip) => ip.interface === podIndex)
    .map((ip) => ip.address.split('/')[0]!)
    .filter((a) => !a.includes(':'));
  const host = prev.interfaces[podIndex - 1];
  if (!host || host.sandbox !== undefined) return { addresses, hostVeths: [] };
  return { addresses, hostVeths: [host.name], ...(host.mac ? { hostVethMac: host.mac.toLowerCase() } : {}) };
}

function cmdDel(env: CniEnv, conf: NetConf, ctx: Context): Promise<unknown> {
  return withPod(ctx.netns, env.netns, (pod) => del(env, conf, ctx, 'gone' in pod ? undefined : pod));
}

/**
 * DEL tears down only what belongs to this attachment (container id + ifname + namespace), whatever
 * prevResult says: its interface inside its own namespace; the address ipamd held for it; addresses
 * prevResult names only while ipamd says no other attachment holds them; a host veth only when its
 * MAC is the one recorded for the attachment. With ipamd away it removes what the namespace proves,
 * leaves a note for ipamd to release the address when it is back, and succeeds: a DEL that fails
 * forever would wedge the kubelet's cleanup of the pod.
 */
async function del(env: CniEnv, conf: NetConf, { log, ipamd }: Context, pod: PodNetns | undefined) {
  const prev = fromPrevResult(conf.prevResult, env);
  let released: DelResult | undefined;
  try {
    released = await ipamd.del({ ...attachment(env, conf), addresses: prev.addresses });
    log.info('address released', { address: released.address, heldByOthers: released.heldByOthers });
  } catch (err) {
    if (!isAway(err)) throw err;
    log.warn('ipamd is away: unwiring what the namespace proves, release left for ipamd', {
      err: (err as Error).message,
    });
  }
  const owned: plumbing.Owned[] = [];
  if (released) {
    if (released.address) {
      owned.push({ address: released.address, hostVethMac: released.hostVethMac ?? prev.hostVethMac });
    }
    for (const address of prev.addresses) {
      if (address !== released.address) owned.push({ address, hostVethMac: prev.hostVethMac });
    }
  }
  const notOurs = new Set(released?.heldByOthers ?? []);
  const unwired = await plumbing.unwirePod({ pod, ifName: env.ifName, owned, notOurs });
  if (!released) {
    // Loaded only here: the note's hashing and atomic write are not on any other call's path.
    const { recordPendingDel } = await import('./pending-del.js');
    const note = { ...attachment(env, conf), addresses: unwired, at: new Date().toISOString() };
    await recordPendingDel(conf.ipamdSocket, note).catch((err) =>
      log.error('could not leave the release for ipamd', { err: describe(err) }),
    );
  }
  return undefined;
}

/** ipamd cannot take the DEL now (not running, starting, shutting down): DEL must not wait for it. */
function isAway(err: unknown): boolean {
  return err instanceof IpamdUnreachable || (err instanceof CniError && err.code === Code.tryAgainLater);
}

function cmdCheck(env: CniEnv, conf: NetConf, ctx: Context): Promise<unknown> {
  return withPod(ctx.netns, env.netns, (pod) => check(env, conf, required(pod, env.netns)));
}

async function check(env: CniEnv, conf: NetConf, podNs: PodNetns): Promise<unknown> {
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
    pod: podNs,
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
      .removeHostLeftovers({ address: r.address, hostVethMac: r.hostVethMac })
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
