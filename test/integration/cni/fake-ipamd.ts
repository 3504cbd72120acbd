/**
 * TEST DOUBLE: a minimal responder for the ipamd socket protocol, so the plugin's plumbing can be
 * tested (and benchmarked) without EC2 or the real daemon. It hands out addresses from a fixed list,
 * idempotently per attachment, and records every request. It is not ipamd.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { randomMac } from '../../../lib/net/addr.js';
import {
  type AddResult,
  type ErrorCode,
  errorLine,
  okLine,
  parseRequest,
  type Request,
} from '../../../lib/protocol/ipamd.js';

export interface FakeAddress {
  address: string;
  deviceNumber: number;
  routeTable: number;
}

export interface FakeIpamdOptions {
  socketPath: string;
  addresses: FakeAddress[];
  vpcCidrs?: string[];
  snatEnabled?: boolean;
  mtu?: number;
  vethPrefix?: string;
}

export class FakeIpamd {
  readonly requests: Request[] = [];
  /** attachment key -> address, with the host veth MAC handed out for it (as ipamd records one) */
  readonly assigned = new Map<string, FakeAddress & { hostVethMac: string }>();
  /** When set, every request is answered with this error. */
  failure: { code: ErrorCode; message: string } | undefined;
  /** Overrides merged into every add result (e.g. a different MTU). */
  addOverrides: Partial<AddResult> = {};
  private server: Server | undefined;

  constructor(readonly opts: FakeIpamdOptions) {}

  async start(): Promise<this> {
    rmSync(this.opts.socketPath, { force: true });
    this.server = createServer((sock) => {
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) sock.end(this.answer(buf.slice(0, nl)));
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.opts.socketPath, resolve));
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
    rmSync(this.opts.socketPath, { force: true });
  }

  private answer(line: string): string {
    let req: Request;
    try {
      req = parseRequest(line);
    } catch (err) {
      return errorLine('bad_request', (err as Error).message);
    }
    this.requests.push(req);
    if (this.failure) return errorLine(this.failure.code, this.failure.message);
    switch (req.op) {
      case 'health':
        return okLine({ ready: true, freeAddresses: this.opts.addresses.length - this.assigned.size });
      case 'add': {
        const key = `${req.network}/${req.containerId}/${req.ifName}`;
        let a = this.assigned.get(key);
        if (!a) {
          const used = new Set([...this.assigned.values()].map((x) => x.address));
          const free = this.opts.addresses.find((x) => !used.has(x.address));
          if (!free) return errorLine('exhausted', 'test double: no address left');
          a = { ...free, hostVethMac: randomMac() };
          this.assigned.set(key, a);
        }
        const result: AddResult = {
          address: a.address,
          eniId: `eni-${a.deviceNumber}`,
          deviceNumber: a.deviceNumber,
          routeTable: a.routeTable,
          subnetCidr: '10.0.0.0/16',
          vpcCidrs: this.opts.vpcCidrs ?? ['10.0.0.0/16'],
          snat: { enabled: this.opts.snatEnabled ?? true, randomize: 'prng', excludeCidrs: [] },
          mtu: this.opts.mtu ?? 9001,
          vethPrefix: this.opts.vethPrefix ?? 'eni',
          hostVethMac: a.hostVethMac,
          ...this.addOverrides,
        };
        return okLine(result);
      }
      case 'del': {
        const key = `${req.network}/${req.containerId}/${req.ifName}`;
        const a = this.assigned.get(key);
        this.assigned.delete(key);
        const held = new Set([...this.assigned.values()].map((x) => x.address));
        return okLine({
          address: a?.address ?? null,
          deviceNumber: a?.deviceNumber ?? null,
          routeTable: a?.routeTable ?? null,
          hostVethMac: a?.hostVethMac ?? null,
          heldByOthers: (req.addresses ?? []).filter((x) => held.has(x)),
        });
      }
      case 'gc': {
        const valid = new Set(req.valid.map((v) => `${req.network}/${v.containerId}/${v.ifName}`));
        const released: { containerId: string; ifName: string; address: string; hostVethMac: string }[] = [];
        for (const [key, a] of this.assigned) {
          if (!key.startsWith(`${req.network}/`) || valid.has(key)) continue;
          const [, containerId, ifName] = key.split('/');
          released.push({
            containerId: containerId!,
            ifName: ifName!,
            address: a.address,
            hostVethMac: a.hostVethMac,
          });
          this.assigned.delete(key);
        }
        return okLine({ released });
      }
      case 'cni':
        // Like an ipamd without the fast path: the shim falls back to the Node plugin.
        return errorLine('bad_request', 'test double: does not run forwarded CNI calls');
    }
  }
}
