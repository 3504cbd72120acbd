/**
 * A throwaway stand-in for one instance in a VPC, built from namespaces (all named vpccni-<runid>-*):
 *
 *   pod1 (10.0.0.50, on the primary ENI) ─┐                          ┌─ eth0 203.0.113.10 ("internet")
 *   pod2 (10.0.1.50, on the secondary ENI)┤ node ── eth0 ─┐          │       198.51.100.10 ("excluded")
 *                                         │  10.0.0.10/24 ├── vpc ───┴─ rem
 *                                         └── eth1 ───────┘  router
 *                                             ENI device 1, 10.0.1.10
 *
 * The vpc namespace routes like the VPC: it knows which ENI owns each pod address, and enforces a
 * source check (strict rp_filter on the links to the node): a packet whose source address does not
 * belong to the ENI it came out of is dropped. The pods are wired as the CNI plugin wires them.
 * Fixture code may use `ip`; the product code under test does not.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const MAC = { eth0: '02:0a:00:00:00:10', eth1: '02:0a:00:00:01:10' };
export const NODE_IP = '10.0.0.10';
export const ENI1 = {
  mac: MAC.eth1,
  deviceNumber: 1,
  primaryIp: '10.0.1.10',
  subnetCidr: '10.0.1.0/24',
  mtu: 9001,
};
export const POD1 = '10.0.0.50';
export const POD2 = '10.0.1.50';
export const INTERNET = '203.0.113.10';
export const EXCLUDED = '198.51.100.10';
export const ECHO_PORT = 7777;

const DRIVER = join(import.meta.dirname, 'driver.ts');

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export class Topology {
  readonly runId = `vpccni-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  readonly ns = {
    node: `${this.runId}-node`,
    vpc: `${this.runId}-vpc`,
    pod1: `${this.runId}-pod1`,
    pod2: `${this.runId}-pod2`,
    rem: `${this.runId}-rem`,
  };
  private readonly created: string[] = [];
  private readonly children: ChildProcess[] = [];

  ip(ns: string, ...args: string[]): string {
    return sh('ip', ['-n', ns, ...args]);
  }

  exec(ns: string, cmd: string, ...args: string[]): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  private addNs(name: string): void {
    sh('ip', ['netns', 'add', name]);
    this.created.push(name);
    this.ip(name, 'link', 'set', 'lo', 'up');
  }

  /** veth with `a` in nsA and `b` in nsB (created inside nsA, peer moved at creation). */
  private veth(nsA: string, a: string, nsB: string, b: string, macA?: string): void {
    const args = [
      'link',
      'add',
      a,
      ...(macA ? ['address', macA] : []),
      'type',
      'veth',
      'peer',
      'name',
      b,
      'netns',
      nsB,
    ];
    this.ip(nsA, ...args);
  }

  build(): void {
    for (const n of Object.values(this.ns)) this.addNs(n);
    const { node, vpc, pod1, pod2, rem } = this.ns;

    // The instance's ENIs, as the VPC attaches them.
    this.veth(node, 'eth0', vpc, 'v-eth0', MAC.eth0);
    this.veth(node, 'eth1', vpc, 'v-eth1', MAC.eth1);
    // As the OS configures the primary ENI (DHCP): address, default route. eth1 stays down and bare.
    this.ip(node, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'eth0');
    this.ip(node, 'link', 'set', 'eth0', 'up');
    this.ip(node, 'route', 'add', 'default', 'via', '10.0.0.1');

    // The VPC router.
    this.ip(vpc, 'addr', 'add', '10.0.0.1/24', 'dev', 'v-eth0');
    this.ip(vpc, 'addr', 'add', '10.0.1.1/24', 'dev', 'v-eth1');
    this.veth(vpc, 'v-rem', rem, 'eth0');
    this.ip(vpc, 'addr', 'add', '203.0.113.1/24', 'dev', 'v-rem');
    this.ip(vpc, 'addr', 'add', '198.51.100.1/24', 'dev', 'v-rem');
    for (const l of ['v-eth0', 'v-eth1', 'v-rem']) this.ip(vpc, 'link', 'set', l, 'up');
    this.ip(vpc, 'route', 'add', `${POD1}/32`, 'via', NODE_IP);
    this.ip(vpc, 'route', 'add', `${POD2}/32`, 'via', ENI1.primaryIp);
    this.exec(vpc, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const l of ['all', 'v-eth0', 'v-eth1'])
      this.exec(vpc, 'sysctl', '-qw', `net.ipv4.conf.${l}.rp_filter=1`);

    // The far side.
    this.ip(rem, 'addr', 'add', `${INTERNET}/24`, 'dev', 'eth0');
    this.ip(rem, 'addr', 'add', `${EXCLUDED}/24`, 'dev', 'eth0');
    this.ip(rem, 'link', 'set', 'eth0', 'up');
    this.ip(rem, 'route', 'add', 'default', 'via', '203.0.113.1');

    // Pods, wired as the plugin does: /32, 169.254.1.1 gateway with a permanent neighbour, host routes and rules.
    this.pod(pod1, 'eniaaaa1', POD1, undefined);
    this.pod(pod2, 'eniaaaa2', POD2, 2);
  }

  private pod(ns: string, hostVeth: string, ip: string, table: number | undefined): void {
    const node = this.ns.node;
    this.veth(node, hostVeth, ns, 'eth0');
    this.ip(node, 'link', 'set', hostVeth, 'up');
    const hostMac = JSON.parse(this.ip(node, '-j', 'link', 'show', hostVeth))[0].address as string;
    this.ip(ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0');
    this.ip(ns, 'link', 'set', 'eth0', 'up');
    this.ip(ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    this.ip(ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
    this.ip(ns, 'neigh', 'add', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent');
    this.ip(node, 'route', 'add', `${ip}/32`, 'dev', hostVeth, 'scope', 'link');
    this.ip(node, 'rule', 'add', 'to', ip, 'lookup', 'main', 'priority', '512');
    if (table !== undefined)
      this.ip(node, 'rule', 'add', 'from', ip, 'lookup', String(table), 'priority', '1536');
  }

  private driver?: { child: ChildProcess; lines: AsyncIterator<string> };

  /** Runs hostnet actions inside the node namespace, as ipamd would (see driver.ts; started once). */
  async hostnet(actions: unknown[]): Promise<{ ok: boolean; error?: string; results: unknown[] }> {
    if (!this.driver) {
      const child = spawn(
        'ip',
        ['netns', 'exec', this.ns.node, process.execPath, '--import', 'tsx', DRIVER],
        {
          stdio: ['pipe', 'pipe', 'inherit'],
        },
      );
      this.children.push(child);
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      this.driver = { child, lines };
      const first = await lines.next();
      if (first.done) throw new Error('hostnet driver exited before it was ready');
    }
    this.driver.child.stdin!.write(`${JSON.stringify(actions)}\n`);
    const reply = await this.driver.lines.next();
    if (reply.done) throw new Error('hostnet driver exited');
    return JSON.parse(reply.value);
  }

  /** A UDP server (default in `rem`) that answers each datagram with the source address it saw. */
  async startEcho(ns = this.ns.rem): Promise<void> {
    const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(r.address,r.port,r.address));s.bind(${ECHO_PORT},()=>console.log('ready'));`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
    });
  }

  /** Sends one UDP datagram from a pod; resolves with the source address the far side saw, or null. */
  sourceSeenBy(fromNs: string, dst: string, port = ECHO_PORT, timeoutMs = 1500): string | null {
    const script = `const s=require('dgram').createSocket('udp4');const t=setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},${timeoutMs});s.on('message',m=>{console.log(String(m));clearTimeout(t);process.exit(0)});s.send('hi',${port},'${dst}');`;
    const out = this.exec(fromNs, process.execPath, '-e', script).trim();
    return out === 'TIMEOUT' ? null : out;
  }

  iptablesSave(): string {
    // Drop the timestamp comments so two saves of the same state compare equal.
    return this.exec(this.ns.node, 'iptables-save')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
  }

  json<T = Record<string, unknown>[]>(ns: string, ...args: string[]): T {
    return JSON.parse(this.ip(ns, '-j', ...args)) as T;
  }

  destroy(): void {
    for (const c of this.children) {
      if (c.pid && c.exitCode === null) {
        try {
          process.kill(c.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // `ip netns exec` runs node as a child of ip; killing ip leaves node holding the namespace briefly.
    for (const name of this.created.reverse()) {
      try {
        for (const pid of sh('ip', ['netns', 'pids', name]).split('\n').filter(Boolean)) {
          process.kill(Number(pid), 'SIGKILL');
        }
      } catch {
        // namespace or processes already gone
      }
      try {
        sh('ip', ['netns', 'del', name]);
      } catch {
        // already gone
      }
    }
  }
}
