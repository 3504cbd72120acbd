/**
 * ADD/DEL latency of the whole CNI process, exec'd as a runtime does (env + config on stdin, inside
 * the node's network namespace), for three contenders in the same run, interleaved so all see the
 * same machine load: the native shim handing the call to ipamd (dist/aws-cni), the Node plugin
 * (dist/aws-cni.mjs), and Debian's ptp + host-local (ipMasq off). Prints median/p90/p99 and ratios.
 *
 *   npx tsx bench/cni.ts [--n 40] [--local-vpc | --node-netns NAME --ipamd-socket PATH]
 *
 * --local-vpc (the setting): an m5.large of the local VPC running the real ipamd.
 * --node-netns/--ipamd-socket: an existing node. Neither: a namespace of its own answered by the
 * ipamd TEST DOUBLE (plugin cost without the daemon's; the double does not run forwarded calls, so
 * the shim contender there measures the shim's fallback to the Node plugin). NODE_EXTRA_CA_CERTS is
 * removed from every contender's environment.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { inNetns } from '../lib/net/netns.js';
import { FakeIpamd } from '../test/integration/cni/fake-ipamd.js';
import { Netns, runId } from '../test/integration/cni/harness.js';
import { Scenario } from '../test/integration/ipamd/fixture.js';

const { values: opts } = parseArgs({
  options: {
    n: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '3' },
    'local-vpc': { type: 'boolean', default: false },
    'node-netns': { type: 'string' },
    'ipamd-socket': { type: 'string' },
    plugin: { type: 'string', default: resolve(import.meta.dirname, '../dist/aws-cni.mjs') },
    shim: { type: 'string', default: resolve(import.meta.dirname, '../dist/aws-cni') },
    ptp: { type: 'string', default: '/usr/lib/cni/ptp' },
    /** Extra aws-cni contenders, NAME=COMMAND LINE (e.g. to compare node flags or wrappers). */
    variant: { type: 'string', multiple: true, default: [] },
  },
});
const N = Number(opts.n);
const WARMUP = Number(opts.warmup);
if (!Number.isInteger(N) || N < 1) throw new Error(`--n must be a positive integer, got ${opts.n}`);
if (Boolean(opts['node-netns']) !== Boolean(opts['ipamd-socket'])) {
  throw new Error('--node-netns and --ipamd-socket go together');
}

interface Call {
  exe: string;
  args?: string[];
  env: Record<string, string>;
  stdin: string;
}

/** Runs one plugin process inside `nodePath`'s namespace; resolves with wall-clock ms. */
function timed(nodePath: string, call: Call): Promise<{ ms: number; code: number; out: string }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    // The fork happens synchronously inside spawn(), so the child starts in the node's namespace
    // without an `ip netns exec` in between that would add to both contenders' times.
    const child = inNetns(nodePath, () =>
      spawn(call.exe, call.args ?? [], { env: call.env, stdio: ['pipe', 'pipe', 'pipe'] }),
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ ms: performance.now() - t0, code: code ?? -1, out }));
    child.stdin.end(call.stdin);
  });
}

function env(command: string, containerId: string, netns: string, extra: Record<string, string> = {}) {
  const e: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${containerId}`,
    ...extra,
  };
  delete e.NODE_EXTRA_CA_CERTS;
  return e;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const id = runId();
const created: Netns[] = [];
let fake: FakeIpamd | undefined;
let scenario: Scenario | undefined;
const dataDir = mkdtempSync(join(tmpdir(), 'vpccni-bench-hostlocal-'));

async function main(): Promise<void> {
  let nodePath: string;
  let socketPath: string;
  if (opts['local-vpc']) {
    scenario = await Scenario.create();
    const instance = await scenario.launch('m5.large');
    // No cooldown: the bench releases and re-takes an address every cycle.
    const ipamd = scenario.startIpamd(instance, { IP_COOLDOWN_PERIOD: '0' });
    await ipamd.waitServing();
    nodePath = `/var/run/netns/${instance.netns}`;
    socketPath = ipamd.socketPath;
    console.log(`local VPC instance ${instance.id} (${instance.instanceType}), real ipamd`);
  } else if (opts['node-netns']) {
    nodePath = `/var/run/netns/${opts['node-netns']}`;
    socketPath = opts['ipamd-socket']!;
  } else {
    const node = Netns.create(`vpccni-${id}-bnode`);
    created.push(node);
    nodePath = node.path;
    socketPath = `/tmp/vpccni-${id}-bench.sock`;
    fake = await new FakeIpamd({
      socketPath,
      addresses: [{ address: '10.0.2.20', deviceNumber: 1, routeTable: 2 }],
    }).start();
  }
  const awsPod = Netns.create(`vpccni-${id}-baws`);
  const shimPod = Netns.create(`vpccni-${id}-bshim`);
  const ptpPod = Netns.create(`vpccni-${id}-bptp`);
  created.push(awsPod, shimPod, ptpPod);

  const awsConf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'aws-cni',
    type: 'aws-cni',
    ipamdSocket: socketPath,
  });
  const ptpConf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'bench-ptp',
    type: 'ptp',
    ipMasq: false,
    mtu: 9001,
    ipam: { type: 'host-local', subnet: '10.250.0.0/24', dataDir },
  });
  const shimName = fake ? 'shim (fallback)' : 'shim->ipamd';
  const contenders: Record<string, (cmd: string) => Call> = {
    [shimName]: (cmd) => ({ exe: opts.shim!, env: env(cmd, 'benchshim', shimPod.path), stdin: awsConf }),
    'node plugin': (cmd) => ({ exe: opts.plugin!, env: env(cmd, 'benchaws', awsPod.path), stdin: awsConf }),
    'ptp+host-local': (cmd) => ({ exe: opts.ptp!, env: env(cmd, 'benchptp', ptpPod.path), stdin: ptpConf }),
  };
  for (const v of opts.variant ?? []) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new Error(`--variant must be NAME=COMMAND, got ${v}`);
    const [exe, ...args] = v
      .slice(eq + 1)
      .split(' ')
      .filter(Boolean);
    contenders[v.slice(0, eq)] = (cmd) => ({
      exe: exe!,
      args,
      env: env(cmd, 'benchaws', awsPod.path),
      stdin: awsConf,
    });
  }
  const times: Record<string, { ADD: number[]; DEL: number[] }> = {};
  for (const name of Object.keys(contenders)) times[name] = { ADD: [], DEL: [] };

  for (let i = 0; i < WARMUP + N; i++) {
    const order = i % 2 === 0 ? Object.entries(contenders) : Object.entries(contenders).reverse();
    for (const [name, make] of order) {
      for (const cmd of ['ADD', 'DEL'] as const) {
        const r = await timed(nodePath, make(cmd));
        if (r.code !== 0) throw new Error(`${name} ${cmd} failed (exit ${r.code}): ${r.out}`);
        if (i >= WARMUP) times[name]![cmd].push(r.ms);
      }
    }
  }

  const W = Math.max(16, ...Object.keys(times).map((k) => k.length));
  const fmt = (x: number) => x.toFixed(1).padStart(7);
  console.log(
    `${N} ADD+DEL cycles each (after ${WARMUP} warm-up), wall-clock ms, load ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log(`${'contender'.padEnd(W)} cmd   median     p90     p99`);
  for (const [name, t] of Object.entries(times)) {
    for (const cmd of ['ADD', 'DEL'] as const) {
      const xs = t[cmd];
      console.log(`${name.padEnd(W)} ${cmd}  ${fmt(pct(xs, 50))} ${fmt(pct(xs, 90))} ${fmt(pct(xs, 99))}`);
    }
  }
  for (const name of Object.keys(times).filter((n) => n !== 'ptp+host-local')) {
    for (const cmd of ['ADD', 'DEL'] as const) {
      const ratio = pct(times[name]![cmd], 50) / pct(times['ptp+host-local']![cmd], 50);
      console.log(`ratio ${name} / ptp+host-local, ${cmd} median: ${ratio.toFixed(2)}`);
    }
  }
}

try {
  await main();
} finally {
  await fake?.stop();
  for (const ns of created) ns.delete();
  await scenario?.close();
  rmSync(dataDir, { recursive: true, force: true });
}
