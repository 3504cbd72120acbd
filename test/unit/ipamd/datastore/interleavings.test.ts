/**
 * Double assignment must be impossible, not unlikely: an address leaves an attachment only through
 * that attachment's own release (or GC/restore once the holder is proven gone). This drives seeded
 * random interleavings of what can break that rule against the real datastore, IpamService,
 * checkpoint file and replay: late DELs of sandboxes long gone (after their address went to a new
 * pod), kill -9 between the checkpoint write and the answer (the runtime then retries the ADD or DELs
 * it), restarts while EC2 hides an ENI (and while IMDS lags its addresses), reconciliation suspending
 * and confirming it, and cooldowns running out. After every step, every pod the runtime believes
 * alive still holds in ipamd the address it was told, and no two of them share one.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../../../ipamd/checkpoint.js';
import { Datastore, type EniInfo } from '../../../../ipamd/datastore/datastore.js';
import { restoreCheckpoint } from '../../../../ipamd/datastore/restore.js';
import { IpamService } from '../../../../ipamd/ipam-handler.js';
import { PROTOCOL_VERSION } from '../../../../lib/protocol/ipamd.js';

const log = pino({ level: 'silent' });
const COOLDOWN_MS = 1_000;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** mulberry32: a tiny seeded generator, so a failing seed replays exactly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ENIS: { info: EniInfo; ips: string[] }[] = [0, 1].map((dev) => ({
  info: {
    id: `eni-${dev}`,
    mac: `0a:00:00:00:00:0${dev}`,
    deviceNumber: dev,
    subnetId: 'subnet-1',
    subnetCidr: '10.0.0.0/16',
    primaryIp: `10.0.${dev}.1`,
    attachmentId: dev === 0 ? null : 'eni-attach-1',
    isPrimary: dev === 0,
    forPods: true,
  },
  ips: [2, 3, 4, 5, 6].map((h) => `10.0.${dev}.${h}`),
}));

/** One ipamd: its datastore, checkpoint and service; `restart` is a kill -9 and a start. */
class Node {
  ds!: Datastore;
  service!: IpamService;
  private readonly checkpoint: Checkpoint;

  constructor(
    path: string,
    readonly clock: { t: number },
  ) {
    this.checkpoint = new Checkpoint(path, () => ({
      version: 1,
      allocations: this.ds
        .assignments()
        .map((a) => ({ ...a.assignment, address: a.address, eniId: a.eniId })),
      cooldowns: this.ds.cooldowns(),
    }));
    this.build({ hidden: false, imdsLag: false });
  }

  /**
   * What start-up builds: the ENIs as discovery found them (device 1 hidden by EC2: held on IMDS's
   * word, unconfirmed; IMDS lagging: only some of its addresses listed), the checkpoint replayed.
   */
  private build(o: { hidden: boolean; imdsLag: boolean }): void {
    this.ds = new Datastore(COOLDOWN_MS, () => this.clock.t);
    for (const { info, ips } of ENIS) {
      const hidden = o.hidden && !info.isPrimary;
      this.ds.addEni(info, { unconfirmed: hidden });
      this.ds.addIps(info.id, hidden && o.imdsLag ? ips.slice(0, 2) : ips);
    }
    this.service = new IpamService({
      ds: this.ds,
      checkpoint: this.checkpoint,
      log,
      vpcCidrs: ['10.0.0.0/16'],
      snat: { enabled: true, randomize: 'prng', excludeCidrs: [] },
      podMtu: 9001,
      vethPrefix: 'eni',
      maxPods: 100,
    });
    this.service.setReady(null);
  }

  async restart(o: { hidden: boolean; imdsLag: boolean }): Promise<void> {
    const saved = await this.checkpoint.load();
    this.build(o);
    if (saved) restoreCheckpoint(this.ds, saved, log, () => false);
  }

  /** Reconciliation once EC2 shows the ENI (and its addresses): confirmed, addresses backed. */
  confirm(): void {
    for (const { info, ips } of ENIS) {
      this.ds.confirmEni(info.id);
      this.ds.addIps(info.id, ips);
    }
  }
}

const key = (c: string) => ({ network: 'aws-cni', containerId: c, ifName: 'eth0' });
const addReq = (c: string) => ({
  v: PROTOCOL_VERSION,
  op: 'add' as const,
  ...key(c),
  netns: `/proc/1/ns/${c}`,
});
const delReq = (c: string) => ({ v: PROTOCOL_VERSION, op: 'del' as const, ...key(c) });

async function walk(seed: number, steps: number): Promise<Record<string, number>> {
  // tmpfs when there is one: thousands of fsynced checkpoint writes.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'ipamd-walk-'));
  dirs.push(dir);
  const random = rng(seed);
  const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(random() * xs.length)];
  const clock = { t: 1_000_000 };
  const node = new Node(join(dir, 'ipam.json'), clock);
  /** What the runtime believes: live pods and their addresses; sandboxes gone; ADDs whose answer was lost. */
  const live = new Map<string, string>();
  const gone: string[] = [];
  const lost = new Set<string>();
  const counts: Record<string, number> = {};
  let next = 0;

  const check = (step: string) => {
    const seen = new Map<string, string>();
    for (const [c, address] of live) {
      expect(node.ds.lookup(key(c))?.address, `${step}: ${c} lost ${address}`).toBe(address);
      expect(seen.get(address), `${step}: ${address} held by ${seen.get(address)} and ${c}`).toBeUndefined();
      seen.set(address, c);
    }
  };
  const tryAdd = async (c: string): Promise<string | null> => {
    try {
      return (await node.service.add(addReq(c))).address;
    } catch (err) {
      expect(['pool_empty', 'exhausted']).toContain((err as { code: string }).code);
      return null;
    }
  };

  for (let i = 0; i < steps; i++) {
    const r = random();
    let step: string;
    if (r < 0.28) {
      step = 'add';
      const c = `c${next++}`;
      const a = await tryAdd(c);
      if (a) {
        expect([...live.values()], `add ${c} got the live address ${a}`).not.toContain(a);
        live.set(c, a);
      }
    } else if (r < 0.36 && live.size > 0) {
      step = 'repeated add';
      const c = pick([...live.keys()])!;
      expect(await tryAdd(c)).toBe(live.get(c));
    } else if (r < 0.56 && live.size > 0) {
      step = 'del';
      const c = pick([...live.keys()])!;
      expect((await node.service.del(delReq(c))).address).toBe(live.get(c));
      live.delete(c);
      gone.push(c);
    } else if (r < 0.68 && gone.length > 0) {
      // A runtime retrying the DEL of a sandbox long gone, maybe after its address went to a new pod.
      step = 'late del';
      expect((await node.service.del(delReq(pick(gone)!))).address).toBeNull();
    } else if (r < 0.74) {
      // kill -9 after the checkpoint write, before the answer: the runtime never learns the address.
      step = 'kill -9 between write and answer';
      const c = `c${next++}`;
      if (await tryAdd(c)) lost.add(c);
      await node.restart({ hidden: random() < 0.5, imdsLag: random() < 0.5 });
    } else if (r < 0.8 && lost.size > 0) {
      // ...then it retries the ADD (same attachment) or gives up on the sandbox and DELs it.
      const c = pick([...lost])!;
      lost.delete(c);
      if (random() < 0.5) {
        step = 'retried add after a lost answer';
        const a = await tryAdd(c);
        if (a) {
          expect([...live.values()]).not.toContain(a);
          live.set(c, a);
        }
      } else {
        step = 'del after a lost answer';
        await node.service.del(delReq(c));
        gone.push(c);
      }
    } else if (r < 0.86) {
      step = 'restart inside a consistency window';
      await node.restart({ hidden: random() < 0.7, imdsLag: random() < 0.5 });
    } else if (r < 0.9) {
      step = 'reconcile: EC2 hides the ENI';
      node.ds.suspendEni('eni-1');
    } else if (r < 0.95) {
      step = 'reconcile: EC2 shows every ENI';
      node.confirm();
    } else {
      step = 'time passes';
      clock.t += random() < 0.5 ? COOLDOWN_MS + 1 : 100;
    }
    counts[step] = (counts[step] ?? 0) + 1;
    check(step);
  }
  // Teardown of everything: nothing left in ipamd or its checkpoint.
  for (const c of [...live.keys(), ...lost]) await node.service.del(delReq(c));
  expect(node.ds.stats().assigned).toBe(0);
  await node.restart({ hidden: false, imdsLag: false });
  expect(node.ds.assignments()).toEqual([]);
  return counts;
}

describe('no address is ever on two live attachments', () => {
  it('holds over seeded random interleavings of late DEL, kill -9, restarts and reconciliation in a window', async () => {
    const totals: Record<string, number> = {};
    for (let seed = 1; seed <= 20; seed++) {
      const counts = await walk(seed, 100);
      for (const [k, v] of Object.entries(counts)) totals[k] = (totals[k] ?? 0) + v;
    }
    // Every kind of step was exercised, many times.
    for (const step of [
      'add',
      'repeated add',
      'del',
      'late del',
      'kill -9 between write and answer',
      'retried add after a lost answer',
      'del after a lost answer',
      'restart inside a consistency window',
      'reconcile: EC2 hides the ENI',
      'reconcile: EC2 shows every ENI',
      'time passes',
    ]) {
      expect(totals[step], step).toBeGreaterThan(20);
    }
  }, 60_000);
});
