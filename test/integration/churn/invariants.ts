/**
 * What must stay true on the churning nodes, checked continuously where it is cheap and after a
 * settle at the end:
 *   - no address is held by two attachments the runtime still has (a live pod, or one whose DEL has
 *     not succeeded yet) - across both nodes;
 *   - every live pod's address is assigned on EC2 to an attached ENI of its node and recorded by
 *     ipamd for its container (checkpoint; after settle also introspection), and no address is in
 *     two allocations of the checkpoints;
 *   - after settle: ipamd holds exactly the live pods, the pending-del notes are processed, every
 *     live pod's CHECK passes, the kernel has host veths, routes and rules only for live pods;
 *   - after settle: no ENI leaked (attached and unmanaged, or created and never attached);
 *   - after every pod is deleted: nothing in ipamd, its checkpoint, or the kernel.
 * (DELs that never succeed, failed CHECKs, daemons that end by themselves are reported where they
 * happen: runtime.ts, daemonset.ts.)
 */
import type { Instance, LocalVpc } from '../../../infra/local-vpc/index.js';
import { TAG_INSTANCE_ID } from '../../../ipamd/pool/executor.js';
import {
  checkpointAllocations,
  type Held,
  introspect,
  introspectedPods,
  kernelState,
  pendingDels,
} from './node-state.js';
import type { Sandbox } from './runtime.js';
import type { Tally } from './tally.js';

export interface NodeView {
  label: string;
  instance: Instance;
  checkpointPath: string;
  socketPath: string;
  /** The runtime's sandboxes on this node (live, adding, deleting, forgotten). */
  sandboxes(): readonly Sandbox[];
}

function describeSb(sb: Sandbox): string {
  return `${sb.podName} ${sb.containerId.slice(0, 12)} (${sb.state}) on ${sb.node}`;
}

export class Invariants {
  /** Address -> the attachment that holds it as far as the runtime knows. */
  private readonly claims = new Map<string, Sandbox>();

  constructor(
    private readonly vpc: LocalVpc,
    private readonly tally: Tally,
  ) {}

  /** ADD succeeded: nobody else may hold the address. */
  claim(sb: Sandbox): void {
    const address = sb.address!;
    this.tally.inc('check address-unique');
    const other = this.claims.get(address);
    if (other && other !== sb) {
      this.tally.violate(
        'two-attachments-one-address',
        `${address} handed to ${describeSb(sb)} while ${describeSb(other)} still holds it`,
      );
    }
    this.claims.set(address, sb);
  }

  release(sb: Sandbox): void {
    if (sb.address && this.claims.get(sb.address) === sb) this.claims.delete(sb.address);
  }

  /** EC2: the address is on an attached ENI of the node. */
  private onEc2(node: Instance, address: string): string | null {
    const eni = this.vpc.state.findEniByAddress(address);
    if (!eni) return 'no ENI holds it';
    if (eni.attachment?.instanceId !== node.id) {
      return `${eni.id} holds it but is attached to ${eni.attachment?.instanceId ?? 'nothing'}`;
    }
    if (eni.attachment.status !== 'attached') return `${eni.id} is ${eni.attachment.status}`;
    return null;
  }

  /**
   * The cheap continuous check: every live pod is in its node's checkpoint with its address and on
   * EC2; no address twice in the checkpoints.
   */
  checkRunning(nodes: readonly NodeView[]): void {
    const everywhere = new Map<string, string>();
    for (const n of nodes) {
      let allocations: Held[];
      try {
        allocations = checkpointAllocations(n.checkpointPath);
      } catch (err) {
        this.tally.violate('checkpoint-unreadable', `${n.label}: ${(err as Error).message}`);
        continue;
      }
      const byContainer = new Map(allocations.map((a) => [a.containerId, a.address]));
      for (const a of allocations) {
        this.tally.inc('check checkpoint-unique');
        const where = everywhere.get(a.address);
        if (where) {
          this.tally.violate(
            'address-twice-in-checkpoints',
            `${a.address}: ${where} and ${n.label}/${a.containerId.slice(0, 12)}`,
          );
        }
        everywhere.set(a.address, `${n.label}/${a.containerId.slice(0, 12)}`);
      }
      for (const sb of n.sandboxes()) {
        if (sb.state !== 'live' || !sb.address) continue;
        this.tally.inc('check recorded-by-ipamd');
        const recorded = byContainer.get(sb.containerId);
        if (recorded !== sb.address) {
          this.tally.violate(
            'live-pod-not-recorded',
            `${describeSb(sb)} holds ${sb.address}; the checkpoint has ${recorded ?? 'nothing'} for it`,
          );
        }
        this.tally.inc('check assigned-on-ec2');
        const problem = this.onEc2(n.instance, sb.address);
        if (problem) this.tally.violate('live-pod-not-on-ec2', `${describeSb(sb)} ${sb.address}: ${problem}`);
      }
    }
  }

  /** After settle: ipamd (checkpoint and introspection) holds exactly the live pods. */
  async checkSettled(n: NodeView): Promise<void> {
    const live = n.sandboxes().filter((s) => s.state === 'live');
    const want = new Map(live.map((s) => [s.containerId, s.address!]));
    const notes = pendingDels(n.socketPath);
    this.tally.inc('check pending-dels-processed');
    if (notes.length > 0) {
      this.tally.violate('pending-dels-left', `${n.label}: ${notes.length} note(s) not processed`);
    }
    const sources: [string, Held[]][] = [
      ['checkpoint', checkpointAllocations(n.checkpointPath)],
      ['introspection', await introspectedPods(this.vpc, n.instance)],
    ];
    for (const [source, held] of sources) {
      this.tally.inc(`check settled-${source}`);
      const got = new Map(held.map((h) => [h.containerId, h.address]));
      const extra = held.filter((h) => want.get(h.containerId) !== h.address);
      const missing = [...want].filter(([c, a]) => got.get(c) !== a);
      if (extra.length > 0) {
        this.tally.violate(
          'assignment-without-live-pod',
          `${n.label} ${source}: ${extra.map((h) => `${h.address}/${h.containerId.slice(0, 12)}`).join(', ')}`,
        );
      }
      if (missing.length > 0) {
        this.tally.violate(
          'live-pod-not-recorded',
          `${n.label} ${source} lacks ${missing.map(([c, a]) => `${a}/${c.slice(0, 12)}`).join(', ')}`,
        );
      }
    }
    for (const sb of live) {
      this.tally.inc('check assigned-on-ec2');
      const problem = this.onEc2(n.instance, sb.address!);
      if (problem) this.tally.violate('live-pod-not-on-ec2', `${describeSb(sb)} ${sb.address}: ${problem}`);
    }
  }

  /**
   * No ENI leaks: within `timeoutMs` every ENI EC2 has attached to the node is one ipamd manages
   * (introspection), and none tagged for the node is left unattached (an ENI an ipamd created and
   * was killed before attaching is swept by leaked-ENI cleanup, set to seconds in the soak).
   */
  async checkEnis(n: NodeView, timeoutMs: number): Promise<void> {
    this.tally.inc('check enis-not-leaked');
    const deadline = Date.now() + timeoutMs;
    let problems: string[] = [];
    for (;;) {
      const known = new Set(
        (await introspect<{ id: string }[]>(this.vpc, n.instance, '/v1/vpc-cni/enis')).map((e) => e.id),
      );
      const unknown = this.vpc.state
        .enisOfInstance(n.instance.id)
        .filter((e) => e.attachment?.status === 'attached' && !known.has(e.id))
        .map((e) => `${e.id} attached but not managed`);
      const available = this.vpc.state
        .enis()
        .filter((e) => e.status === 'available' && e.tags.get(TAG_INSTANCE_ID) === n.instance.id)
        .map((e) => `${e.id} available (created ${e.createdAt.toISOString()})`);
      problems = [...unknown, ...available];
      if (problems.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (problems.length > 0) {
      this.tally.violate('eni-leaked', `${n.label} after ${timeoutMs / 1000} s: ${problems.join('; ')}`);
    }
  }

  /**
   * The node's kernel has pod state only for live pods: host veths (by name and MAC), /32 routes
   * and the plugin's rules; at priority 1536 also ipamd's rules for its ENIs' primary addresses.
   */
  async checkKernel(n: NodeView, context: string): Promise<void> {
    const live = n.sandboxes().filter((s) => s.state === 'live');
    const liveAddresses = new Set(live.map((s) => s.address!));
    const hostEnds = new Map(
      live.map((s) => {
        const host = (s.result?.interfaces as { name: string; mac?: string }[] | undefined)?.[0];
        return [host?.name ?? '', (host?.mac ?? '').toLowerCase()];
      }),
    );
    const eniPrimaries = new Set(
      this.vpc.state
        .enisOfInstance(n.instance.id)
        .map((e) => e.privateIps.find((p) => p.primary)?.address)
        .filter((a): a is string => Boolean(a)),
    );
    const k = await kernelState(n.instance);
    const leftovers: string[] = [];
    for (const v of k.podVeths) {
      if (hostEnds.get(v.name) !== v.mac.toLowerCase()) leftovers.push(`veth ${v.name} ${v.mac}`);
    }
    for (const r of k.podRoutes) {
      if (!liveAddresses.has(r.dst)) leftovers.push(`route ${r.dst} dev ${r.dev}`);
    }
    for (const r of k.rules) {
      const ok =
        r.priority === 512
          ? r.dst !== undefined && liveAddresses.has(r.dst) && !r.src
          : r.src !== undefined && (liveAddresses.has(r.src) || eniPrimaries.has(r.src));
      if (!ok)
        leftovers.push(`rule ${r.priority} from ${r.src ?? 'all'} to ${r.dst ?? 'all'} lookup ${r.table}`);
    }
    this.tally.inc('check kernel');
    if (leftovers.length > 0) {
      this.tally.violate('kernel-leftovers', `${n.label} (${context}): ${leftovers.slice(0, 12).join('; ')}`);
    }
  }
}
