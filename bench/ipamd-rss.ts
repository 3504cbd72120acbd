/**
 * Daemon memory with 250 assigned addresses (target < 60 MB RSS): prefix delegation on an m5.4xlarge,
 * 250 pods added over the socket, then VmRSS of the ipamd process. Needs root and `npm run build`.
 *   npx tsx bench/ipamd-rss.ts
 * ipamd runs with IPAMD_NODE_FLAGS as every launcher does; IPAMD_TEST_NODE_FLAGS='...' compares others
 * ('' = none). BENCH_SMAPS=1 lists the largest mappings. --cluster: as the DaemonSet runs, with a
 * service account, max pods from the node object of a stand-in API server that ipamd watches;
 * --kubeconfig: the same through a kubeconfig (as a systemd ipamd; loads @kubernetes/client-node).
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { IPAMD_NODE_FLAGS } from '../ipamd/node-flags.js';
import { inNetns, netnsPath } from '../lib/net/netns.js';
import { eventually, Scenario } from '../test/integration/ipamd/fixture.js';
import {
  type FakeApiServer,
  selfSignedCert,
  startFakeApiServer,
  tempDir,
  writeKubeconfig,
  writeServiceAccount,
} from '../test/unit/ipamd/k8s/api-server.js';

function nodeFlags(): string {
  const override = process.env.IPAMD_TEST_NODE_FLAGS;
  return (override === undefined ? IPAMD_NODE_FLAGS.join(' ') : override) || '(none)';
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Resident kB per mapped file (anonymous memory under ''), largest first. */
function largestMappings(pid: number): string {
  const rss = new Map<string, number>();
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] ?? '';
    else if (line.startsWith('Rss:')) rss.set(name, (rss.get(name) ?? 0) + Number(line.split(/\s+/)[1]));
  }
  return [...rss]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([n, kb]) => `${String(kb).padStart(8)} kB ${n || '(anonymous)'}`)
    .join('\n');
}

/** Where the resident memory is: the node binary's own pages (shared, file-backed) vs the process's heap. */
function breakdown(pid: number): string {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  return `anonymous ${(kb('Anonymous') / 1024).toFixed(1)} MB, file-backed ${((kb('Rss') - kb('Anonymous')) / 1024).toFixed(1)} MB`;
}

const cluster = process.argv.includes('--cluster')
  ? 'service-account'
  : process.argv.includes('--kubeconfig')
    ? 'kubeconfig'
    : null;
const s = await Scenario.create({ subnets: ['10.0.16.0/20'] });
const tmp = tempDir();
let api: FakeApiServer | undefined;
try {
  const node = await s.launch('m5.4xlarge');
  let clusterEnv: Record<string, string> = { MAX_PODS: '300' };
  if (cluster) {
    const tls = selfSignedCert(tmp.dir);
    api = await startFakeApiServer(tls, {
      listen: (srv: Server) => inNetns(netnsPath(node.netns), () => srv.listen(0)),
    });
    api.put('node', 'rss-node', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'rss-node' },
      status: { capacity: { pods: '300' } },
    });
    const port = new URL(api.url).port;
    if (cluster === 'kubeconfig') {
      const kubeconfig = writeKubeconfig(tmp.dir, `https://127.0.0.1:${port}`, 'rss-token', tls.cert);
      clusterEnv = { KUBECONFIG: kubeconfig, MY_NODE_NAME: 'rss-node' };
    } else {
      const sa = writeServiceAccount(tmp.dir, 'rss-token', tls.cert);
      clusterEnv = {
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: port,
        K8S_SERVICE_ACCOUNT_DIR: sa,
        MY_NODE_NAME: 'rss-node',
      };
    }
  }
  const mode = cluster ? `in a cluster (${cluster}, node watched)` : 'without a cluster';
  console.log(`ipamd ${mode}, node flags: ${nodeFlags()}`);
  const ipamd = s.startIpamd(node, {
    AWS_VPC_K8S_CNI_LOGLEVEL: 'warn',
    ENABLE_PREFIX_DELEGATION: 'true',
    WARM_PREFIX_TARGET: '1',
    ...clusterEnv,
    // As on a node with an instance profile: the SDK's default chain walks to IMDS for credentials
    // (BENCH_ENV_CREDENTIALS=1 keeps the fixture's static keys instead).
    ...(process.env.BENCH_ENV_CREDENTIALS ? {} : { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }),
  });
  await ipamd.waitServing();
  const pid = ipamd.proc.pid!;
  console.log(`RSS after start: ${rssMb(pid).toFixed(1)} MB (${breakdown(pid)})`);
  for (let i = 0; i < 250; i++) {
    await eventually(
      async () => {
        const r = await ipamd.add(`m${i}`);
        return r.ok;
      },
      30_000,
      `pod m${i}`,
    );
  }
  await new Promise((r) => setTimeout(r, 1000));
  console.log(
    `RSS with 250 assigned addresses: ${rssMb(pid).toFixed(1)} MB (target < 60 MB; ${breakdown(pid)})`,
  );
  if (process.env.BENCH_SMAPS) console.log(largestMappings(pid));
  await ipamd.kill('SIGTERM');
} catch (err) {
  console.error(s.daemons[0]?.logs.slice(-15).join('\n'));
  throw err;
} finally {
  await s.close();
  await api?.close();
  tmp.remove();
}
