/**
 * Chaining with Debian's reference plugins, the way a conflist runs them: aws-cni first, then
 * portmap with aws-cni's result as prevResult; DEL in reverse order. A host port must reach the pod.
 * Addresses come from the ipamd TEST DOUBLE.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeIpamd } from './fake-ipamd.js';
import { cni, Netns, requireBuilt, runId } from './harness.js';

const id = runId();
const socketPath = `/tmp/vpccni-${id}-ipamd.sock`;
const PORTMAP = '/usr/lib/cni/portmap';
let node: Netns;
let pod: Netns;
let fake: FakeIpamd;
let server: ChildProcess | undefined;

beforeAll(async () => {
  requireBuilt();
  node = Netns.create(`vpccni-${id}-node`);
  node.ip('addr', 'add', '192.168.250.1/32', 'dev', 'lo');
  pod = Netns.create(`vpccni-${id}-pod`);
  fake = await new FakeIpamd({
    socketPath,
    addresses: [{ address: '10.0.1.10', deviceNumber: 0, routeTable: 254 }],
  }).start();
});

afterAll(async () => {
  if (server?.pid) process.kill(server.pid);
  await fake?.stop();
  pod?.delete();
  node?.delete();
});

/** Runs a TCP server in the pod that greets every connection, resolves once it listens. */
function startPodServer(port: number): Promise<ChildProcess> {
  const code = `require('net').createServer(s=>s.end('hello from the pod\\n')).listen(${port},()=>console.log('up'))`;
  const child = spawn('ip', ['netns', 'exec', pod.name, process.execPath, '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`pod server exited with ${c}`)));
  });
}

describe('chained with portmap', () => {
  it.skipIf(!existsSync(PORTMAP))(
    'a host port reaches the pod; DEL in reverse order removes the mapping',
    async () => {
      const common = {
        containerId: 'c-web',
        netns: pod.path,
        ifName: 'eth0',
        args: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web',
        node,
      };
      // containerd spells the capability keys in PascalCase; every plugin of the chain gets them.
      const runtimeConfig = { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp' }] };
      const ours = {
        cniVersion: '1.0.0',
        name: 'aws-cni',
        type: 'aws-cni',
        ipamdSocket: socketPath,
        runtimeConfig,
      };
      const add = await cni({ ...common, command: 'ADD', conf: ours });
      expect(add.exitCode, add.stdout).toBe(0);

      const portmap = {
        cniVersion: '1.0.0',
        name: 'aws-cni',
        type: 'portmap',
        capabilities: { portMappings: true },
        snat: true,
        runtimeConfig,
      };
      const pm = await cni({
        ...common,
        command: 'ADD',
        plugin: PORTMAP,
        conf: { ...portmap, prevResult: add.json },
      });
      expect(pm.exitCode, pm.stdout + pm.stderr).toBe(0);
      // portmap passes our result through.
      expect(pm.json).toMatchObject({ ips: [{ address: '10.0.1.10/32' }] });

      server = await startPodServer(80);
      const greeting = node.exec('timeout', [
        '5',
        'bash',
        '-c',
        'exec 3<>/dev/tcp/192.168.250.1/8080; cat <&3',
      ]);
      expect(greeting).toBe('hello from the pod\n');

      const pmDel = await cni({
        ...common,
        command: 'DEL',
        plugin: PORTMAP,
        conf: { ...portmap, prevResult: pm.json },
      });
      expect(pmDel.exitCode, pmDel.stdout).toBe(0);
      const del = await cni({ ...common, command: 'DEL', conf: { ...ours, prevResult: pm.json } });
      expect(del.exitCode, del.stdout).toBe(0);
      expect(node.linkNames()).toEqual(['lo']);
      expect(node.exec('iptables-save', ['-t', 'nat'])).not.toContain('8080');
    },
  );

  it.skipIf(!existsSync('/usr/lib/cni/tuning') || !existsSync('/usr/lib/cni/bandwidth'))(
    'tuning sets a pod sysctl and bandwidth shapes the host veth, both from our result',
    async () => {
      const tunePod = Netns.create(`vpccni-${id}-tune`);
      try {
        const common = {
          containerId: 'c-tuned',
          netns: tunePod.path,
          ifName: 'eth0',
          args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=tuned',
          node,
        };
        const ours = { cniVersion: '1.0.0', name: 'aws-cni', type: 'aws-cni', ipamdSocket: socketPath };
        const add = await cni({ ...common, command: 'ADD', conf: ours });
        expect(add.exitCode, add.stdout).toBe(0);
        const tuning = {
          cniVersion: '1.0.0',
          name: 'aws-cni',
          type: 'tuning',
          sysctl: { 'net.ipv4.conf.eth0.accept_local': '1' },
        };
        const tuned = await cni({
          ...common,
          command: 'ADD',
          plugin: '/usr/lib/cni/tuning',
          conf: { ...tuning, prevResult: add.json },
        });
        expect(tuned.exitCode, tuned.stdout + tuned.stderr).toBe(0);
        expect(tunePod.exec('sysctl', ['-n', 'net.ipv4.conf.eth0.accept_local']).trim()).toBe('1');

        // Egress shaping only: ingress would need an ifb device.
        const bandwidth = {
          cniVersion: '1.0.0',
          name: 'aws-cni',
          type: 'bandwidth',
          capabilities: { bandwidth: true },
          runtimeConfig: { bandwidth: { egressRate: 1_000_000, egressBurst: 100_000 } },
        };
        const bw = await cni({
          ...common,
          command: 'ADD',
          plugin: '/usr/lib/cni/bandwidth',
          conf: { ...bandwidth, prevResult: tuned.json },
        });
        if (bw.exitCode !== 0) {
          // The VM's kernel may lack the ifb/tbf modules; say so rather than pretend.
          console.warn(`bandwidth plugin unavailable here: ${bw.stdout}`);
        } else {
          const hostVeth = (add.json!.interfaces as { name: string }[])[0]!.name;
          expect(node.exec('tc', ['qdisc', 'show', 'dev', hostVeth])).toMatch(/tbf|ingress/);
          const bwDel = await cni({
            ...common,
            command: 'DEL',
            plugin: '/usr/lib/cni/bandwidth',
            conf: { ...bandwidth, prevResult: bw.json },
          });
          expect(bwDel.exitCode, bwDel.stdout).toBe(0);
        }
        const del = await cni({ ...common, command: 'DEL', conf: { ...ours, prevResult: tuned.json } });
        expect(del.exitCode, del.stdout).toBe(0);
        expect(node.linkNames()).toEqual(['lo']);
      } finally {
        tunePod.delete();
      }
    },
  );
});
