#!/usr/bin/env node
// Micro-benchmark: lib/net (bundled, as the CNI plugin ships it) vs `ip` commands for a typical CNI
// ADD + DEL of one pod. Needs root; works only inside namespaces it creates and deletes.
//   node bench/netlink.mjs [iterations=20]
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const repo = resolve(import.meta.dirname, '..');
const iterations = Number(process.argv[2] ?? 20);
const run = `${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const hostNs = `vpccni-${run}-host`;
const podNs = `vpccni-${run}-pod`;
const dir = mkdtempSync(join(tmpdir(), 'vpccni-bench-'));

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ip = (...args) => execFileSync('ip', args, { stdio: 'ignore' });

try {
  execFileSync('npx', ['node-gyp', 'rebuild', '--silent', '--directory=native/sys'], {
    cwd: repo,
    stdio: 'ignore',
  });
  await build({
    entryPoints: [join(repo, 'lib/net/index.ts')],
    outfile: join(dir, 'net.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['*.node'],
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: 'silent',
  });
  copyFileSync(join(repo, 'native/sys/build/Release/sys.node'), join(dir, 'sys.node'));
  ip('netns', 'add', hostNs);
  ip('netns', 'add', podNs);

  let t0 = process.hrtime.bigint();
  const net = await import(pathToFileURL(join(dir, 'net.mjs')).href);
  const importMs = ms(t0);
  t0 = process.hrtime.bigint();
  const host = net.openRtnl(net.netnsPath(hostNs));
  const openFirstMs = ms(t0); // includes loading the addon
  const opens = [];
  for (let i = 0; i < iterations; i++) {
    t0 = process.hrtime.bigint();
    net.openRtnl(net.netnsPath(podNs)).close();
    opens.push(ms(t0));
  }

  const podIp = '10.0.1.7';
  const gw = '169.254.1.1';
  async function addDelNetlink() {
    const pod = net.openRtnl(net.netnsPath(podNs));
    await host.createVeth({
      name: 'eni0bench',
      peerName: 'eth0',
      peerNetns: net.netnsPath(podNs),
      mtu: 9001,
    });
    const hostLink = await host.getLink('eni0bench');
    await pod.setLinkUp('eth0');
    await pod.addAddress('eth0', `${podIp}/32`);
    await pod.addRoute({ dst: `${gw}/32`, dev: 'eth0' });
    await pod.addRoute({ dst: 'default', gateway: gw, dev: 'eth0' });
    await pod.replaceNeighbor({ ip: gw, mac: hostLink.mac, dev: 'eth0' });
    await host.setLinkUp('eni0bench');
    await host.addRoute({ dst: `${podIp}/32`, dev: 'eni0bench' });
    await host.addRule({ priority: 512, dst: `${podIp}/32`, table: 'main' });
    pod.close();
  }
  async function delNetlink() {
    await host.deleteRule({ priority: 512, dst: `${podIp}/32`, table: 'main' });
    await host.deleteLink('eni0bench');
  }
  function addDelIp() {
    ip(
      '-n',
      hostNs,
      'link',
      'add',
      'eni0bench',
      'mtu',
      '9001',
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      podNs,
    );
    const mac = JSON.parse(
      execFileSync('ip', ['-n', hostNs, '-j', 'link', 'show', 'eni0bench'], { encoding: 'utf8' }),
    )[0].address;
    ip('-n', podNs, 'link', 'set', 'eth0', 'up');
    ip('-n', podNs, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0');
    ip('-n', podNs, 'route', 'add', `${gw}/32`, 'dev', 'eth0', 'scope', 'link');
    ip('-n', podNs, 'route', 'add', 'default', 'via', gw, 'dev', 'eth0');
    ip('-n', podNs, 'neigh', 'replace', gw, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent');
    ip('-n', hostNs, 'link', 'set', 'eni0bench', 'up');
    ip('-n', hostNs, 'route', 'add', `${podIp}/32`, 'dev', 'eni0bench', 'scope', 'link');
    ip('-n', hostNs, 'rule', 'add', 'pref', '512', 'to', `${podIp}/32`, 'table', 'main');
  }
  function delIp() {
    ip('-n', hostNs, 'rule', 'del', 'pref', '512', 'to', `${podIp}/32`, 'table', 'main');
    ip('-n', hostNs, 'link', 'del', 'eni0bench');
  }

  const nlAdd = [];
  const nlDel = [];
  const ipAdd = [];
  const ipDel = [];
  for (let i = 0; i < iterations; i++) {
    t0 = process.hrtime.bigint();
    await addDelNetlink();
    nlAdd.push(ms(t0));
    t0 = process.hrtime.bigint();
    await delNetlink();
    nlDel.push(ms(t0));
    t0 = process.hrtime.bigint();
    addDelIp();
    ipAdd.push(ms(t0));
    t0 = process.hrtime.bigint();
    delIp();
    ipDel.push(ms(t0));
  }
  host.close();
  const f = (x) => `${x.toFixed(2)} ms`;
  console.log(`lib/net bundle import: ${f(importMs)}; first openRtnl (loads addons): ${f(openFirstMs)}`);
  console.log(`openRtnl(netns) + close, median of ${iterations}: ${f(median(opens))}`);
  console.log(
    `CNI ADD (veth into ns, up x2, addr, 2 routes, neigh, host route, rule), median of ${iterations}:`,
  );
  console.log(`  lib/net: ${f(median(nlAdd))}   ip commands: ${f(median(ipAdd))}`);
  console.log(`CNI DEL (rule, veth), median: lib/net ${f(median(nlDel))}   ip commands: ${f(median(ipDel))}`);
} finally {
  for (const ns of [hostNs, podNs]) {
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
}
