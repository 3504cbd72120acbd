// ipamd following its node and ENIConfig at run time (list + watch) against the stand-in API server:
// relabels, ENIConfig edits, max pods changes, 410 Gone, dropped connections, malformed updates.

import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ClusterFollower,
  detectCluster,
  type FollowedSettings,
  type FollowOptions,
  type K8sAccess,
} from '../../../../ipamd/k8s/index.js';
import {
  type FakeApiServer,
  selfSignedCert,
  startFakeApiServer,
  tempDir,
  writeKubeconfig,
} from './api-server.js';

const NODE = 'ip-10-0-1-10.us-west-2.compute.internal';
const A = { subnet: 'subnet-0aaa0001', securityGroups: ['sg-0aaa0001'] };
const B = { subnet: 'subnet-0bbb0002', securityGroups: ['sg-0bbb0002', 'sg-0bbb0003'] };

function node(eniConfig: string | null, pods: unknown = '29') {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE, labels: eniConfig ? { 'k8s.amazonaws.com/eniConfig': eniConfig } : {} },
    status: { capacity: { pods } },
  };
}
const eniConfig = (name: string, spec: unknown) => ({
  apiVersion: 'crd.k8s.amazonaws.com/v1alpha1',
  kind: 'ENIConfig',
  metadata: { name },
  spec,
});

/** A pino logger whose lines land in `lines` (parsed). */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines, messages: () => lines.map((l) => String(l.msg)) };
}

async function until<T>(what: string, fn: () => T | undefined | null | false, ms = 3_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ClusterFollower', () => {
  let api: FakeApiServer;
  let access: K8sAccess;
  const tmp = tempDir();
  let follower: ClusterFollower | null = null;
  let changes: { next: FollowedSettings; prev: FollowedSettings }[];
  let logs: ReturnType<typeof capturingLogger>;

  beforeAll(async () => {
    const tls = selfSignedCert(tmp.dir);
    api = await startFakeApiServer(tls);
    const a = detectCluster({ KUBECONFIG: writeKubeconfig(tmp.dir, api.url, 'tok', tls.cert) });
    if (!a) throw new Error('expected a cluster');
    access = a;
  });
  afterAll(async () => {
    await api?.close();
    tmp.remove();
  });
  beforeEach(() => {
    api.nodes.clear();
    api.eniConfigs.clear();
    api.failWith = null;
    api.failWatchesWith = null;
    api.delayMs = 0;
    api.urls.length = 0;
    changes = [];
    logs = capturingLogger();
    api.put('node', NODE, node('pods-a'));
    api.put('eniconfig', 'pods-a', eniConfig('pods-a', A));
    api.put('eniconfig', 'pods-b', eniConfig('pods-b', B));
  });
  afterEach(async () => {
    await follower?.stop();
    follower = null;
    // The stand-in notices closed watches a moment later; the next test counts open ones.
    await until('watches closed', () => api.openWatches('node') + api.openWatches('eniconfig') === 0);
  });

  const follow = (o: Partial<FollowOptions> = {}) => {
    follower = new ClusterFollower({
      access,
      nodeName: NODE,
      availabilityZone: 'us-west-2a',
      eniConfigLabel: 'k8s.amazonaws.com/eniConfig',
      eniConfigAnnotation: 'k8s.amazonaws.com/eniConfig',
      wantEniConfig: true,
      initial: { maxPods: 29, eniConfigName: 'pods-a', eniConfig: A },
      onChange: (next, prev) => changes.push({ next, prev }),
      log: logs.log,
      resyncMs: 60_000,
      watchTimeoutSeconds: 30,
      backoffBaseMs: 20,
      backoffMaxMs: 200,
      ...o,
    });
    follower.start();
    return follower;
  };
  /** Waits until the node and ENIConfig watches are open (events from here on arrive by watch). */
  const watching = (...eniConfigs: string[]) =>
    until(
      'watches open',
      () =>
        api.openWatches('node', NODE) === 1 && eniConfigs.every((n) => api.openWatches('eniconfig', n) === 1),
    );

  it('reports nothing while the cluster matches what ipamd started with', async () => {
    const f = follow();
    await watching('pods-a');
    expect(changes).toEqual([]);
    expect(f.current).toEqual({ maxPods: 29, eniConfigName: 'pods-a', eniConfig: A, eniConfigProblem: null });
    // Listed by name, watched from the list's version with bookmarks and a server-side timeout.
    const watch = api.urls.find((u) => u.startsWith('/api/v1/nodes?') && u.includes('watch=1'));
    const q = new URLSearchParams(watch?.split('?')[1]);
    expect(q.get('fieldSelector')).toBe(`metadata.name=${NODE}`);
    expect(q.get('allowWatchBookmarks')).toBe('true');
    expect(q.get('timeoutSeconds')).toBe('30');
    expect(Number(q.get('resourceVersion'))).toBe(api.resourceVersion);
  });

  it('switches to the ENIConfig a relabelled node names, and stops watching the old one', async () => {
    const f = follow();
    await watching('pods-a');
    api.put('node', NODE, node('pods-b'));
    await until('the change', () => changes.length === 1);
    expect(changes[0]?.next).toEqual({
      maxPods: 29,
      eniConfigName: 'pods-b',
      eniConfig: B,
      eniConfigProblem: null,
    });
    expect(changes[0]?.prev.eniConfig).toEqual(A);
    expect(logs.messages()).toContain(
      'cluster settings changed: ENIConfig pods-a → pods-b; subnet/security groups subnet-0aaa0001 [sg-0aaa0001] → subnet-0bbb0002 [sg-0bbb0002,sg-0bbb0003]',
    );
    await until('old watch closed', () => api.openWatches('eniconfig', 'pods-a') === 0);
    expect(Object.keys(f.watches)).toEqual([`node/${NODE}`, 'eniconfig/pods-b']);
  });

  it('applies an edited ENIConfig (subnet and security groups)', async () => {
    follow();
    await watching('pods-a');
    api.put('eniconfig', 'pods-a', eniConfig('pods-a', { subnet: 'subnet-0ccc0003' }));
    await until('the change', () => changes.length === 1);
    // No security groups in the ENIConfig: the daemon falls back to the primary ENI's.
    expect(changes[0]?.next.eniConfig).toEqual({ subnet: 'subnet-0ccc0003', securityGroups: [] });
    expect(logs.messages()).toContain(
      "cluster settings changed: subnet/security groups subnet-0aaa0001 [sg-0aaa0001] → subnet-0ccc0003 [primary ENI's groups]",
    );
  });

  it('follows max pods, and keeps it while the kubelet reports none', async () => {
    const f = follow({ wantEniConfig: false });
    await watching();
    api.put('node', NODE, node('pods-a', '58'));
    await until('the change', () => changes.length === 1);
    expect(changes[0]?.next.maxPods).toBe(58);
    expect(logs.messages()).toContain('cluster settings changed: maxPods 29 → 58');
    api.put('node', NODE, { ...node('pods-a'), status: {} });
    api.put('node', NODE, node('pods-a', 58));
    await until('two more node events', () => f.watches[`node/${NODE}`]!.events >= 3);
    expect(changes).toHaveLength(1);
    // Without custom networking no ENIConfig is read at all.
    expect(api.urls.some((u) => u.includes('eniconfigs'))).toBe(false);
  });

  it('ignores malformed updates and keeps the last good settings', async () => {
    const f = follow();
    await watching('pods-a');
    api.put(
      'eniconfig',
      'pods-a',
      eniConfig('pods-a', { subnet: 'not-a-subnet', securityGroups: ['sg-0aaa0001'] }),
    );
    api.put('node', NODE, node('pods-a', 'lots'));
    api.put('node', NODE, node('Not_A_Name'));
    await until(
      'the malformed updates',
      () => logs.lines.filter((l) => String(l.msg).startsWith('ignoring a malformed')).length === 3,
    );
    expect(logs.lines.find((l) => String(l.msg).startsWith('ignoring a malformed ENIConfig'))?.err).toMatch(
      /spec.subnet "not-a-subnet" is not a subnet id/,
    );
    expect(changes).toEqual([]);
    expect(f.current.eniConfig).toEqual(A);
    // A good update after them still applies.
    api.put('node', NODE, node('pods-a', '40'));
    await until('the change', () => changes.length === 1);
    expect(changes[0]?.next).toEqual({
      maxPods: 40,
      eniConfigName: 'pods-a',
      eniConfig: A,
      eniConfigProblem: null,
    });
  });

  it('restarts a watch whose stream carries a line that is not an event, resuming where it was', async () => {
    const f = follow({ wantEniConfig: false });
    await watching();
    const lists = f.watches[`node/${NODE}`]!.lists;
    api.sendRaw('node', '{"type":"MODIFIED","object":');
    api.sendRaw('node', 'garbage');
    await until('the watch failure logged', () =>
      logs.messages().includes('watching the API server failed; keeping the last settings and retrying'),
    );
    await watching();
    api.put('node', NODE, node('pods-a', '31'));
    await until('the change', () => changes.length === 1);
    // Resumed by watching from the last version again, without a relist.
    expect(f.watches[`node/${NODE}`]!.lists).toBe(lists);
    const nodeWatches = api.urls.filter((u) => u.startsWith('/api/v1/nodes?') && u.includes('watch=1'));
    expect(nodeWatches).toHaveLength(2);
    expect(nodeWatches[1]).toBe(nodeWatches[0]);
    expect(
      logs.lines.find(
        (l) => l.msg === 'watching the API server failed; keeping the last settings and retrying',
      )?.err,
    ).toMatch(/watch line is not JSON/);
  });

  it('reconnects after a dropped connection and resumes from the last version (no event lost)', async () => {
    const f = follow();
    await watching('pods-a');
    const stats = f.watches[`node/${NODE}`]!;
    const rvBefore = api.resourceVersion;
    api.dropWatches();
    // Changed while no watch is open: the resumed watch must deliver it.
    api.put('node', NODE, node('pods-b', '20'));
    await until(
      'the change',
      () => changes.at(-1)?.next.eniConfigName === 'pods-b' && changes.at(-1)?.next.maxPods === 20,
    );
    expect(stats.failures).toBeGreaterThanOrEqual(1);
    expect(
      logs.lines.some((l) => /connection closed mid-stream|socket hang up|ECONNRESET/.test(String(l.err))),
    ).toBe(true);
    // The watch after the drop starts from the version seen before it, without a relist.
    const nodeWatches = api.urls.filter((u) => u.startsWith('/api/v1/nodes?') && u.includes('watch=1'));
    expect(nodeWatches).toHaveLength(2);
    expect(new URLSearchParams(nodeWatches[1]!.split('?')[1]).get('resourceVersion')).toBe(String(rvBefore));
    expect(stats.lists).toBe(1);
  });

  it('resumes a watch the server ended (timeoutSeconds) from the last version, without a relist', async () => {
    const f = follow({ wantEniConfig: false, watchTimeoutSeconds: 1 });
    await watching();
    api.put('node', NODE, node('pods-a', '33'));
    await until('the change', () => changes.length === 1);
    const rv = api.resourceVersion;
    const nodeWatches = () => api.urls.filter((u) => u.startsWith('/api/v1/nodes?') && u.includes('watch=1'));
    await until('a second watch', () => nodeWatches().length >= 2, 3_000);
    expect(new URLSearchParams(nodeWatches()[1]!.split('?')[1]).get('resourceVersion')).toBe(String(rv));
    expect(f.watches[`node/${NODE}`]).toMatchObject({ lists: 1, failures: 0 });
  });

  it('reopens a watch that falls silent past its idle timeout', async () => {
    const f = follow({ wantEniConfig: false, watchIdleTimeoutMs: 200 });
    await watching();
    await until('the silence noticed', () => f.watches[`node/${NODE}`]!.failures >= 1, 2_000);
    expect(
      logs.lines.find(
        (l) => l.msg === 'watching the API server failed; keeping the last settings and retrying',
      )?.err,
    ).toMatch(/got no answer within 200 ms/);
    await watching();
    api.put('node', NODE, node('pods-a', '35'));
    await until('the change', () => changes.length === 1);
  });

  it('lists again after 410 Gone (an ERROR event or the HTTP status) and picks up what changed', async () => {
    const f = follow();
    await watching('pods-a');
    const stats = f.watches[`node/${NODE}`]!;
    // History compacted while the watch was open: the watch ends with Gone, and the change made
    // meanwhile is only visible to a fresh list.
    api.dropWatches();
    api.put('node', NODE, node('pods-a', '44'));
    api.compact();
    await until('the relisted change', () => changes.at(-1)?.next.maxPods === 44);
    expect(stats.gone).toBeGreaterThanOrEqual(1);
    expect(logs.messages()).toContain('watch expired (410 Gone): listing again');
    await watching('pods-a');
    const listsBefore = stats.lists;
    api.expireWatches();
    await until('a relist', () => stats.lists > listsBefore);
    // Gone as the watch request's own status.
    api.failWatchesWith = 410;
    api.dropWatches();
    await until('another relist', () => stats.lists > listsBefore + 2);
    api.failWatchesWith = null;
    await watching('pods-a');
    api.put('eniconfig', 'pods-a', eniConfig('pods-a', B));
    await until('the change', () => changes.at(-1)?.next.eniConfig?.subnet === B.subnet);
  });

  it('holds new ENIs while the named ENIConfig does not exist, and releases them when it appears', async () => {
    follow();
    await watching('pods-a');
    api.put('node', NODE, node('pods-c'));
    await until('the problem', () => changes.length === 1);
    expect(changes[0]?.next).toEqual({
      maxPods: 29,
      eniConfigName: 'pods-c',
      eniConfig: A,
      eniConfigProblem: `ENIConfig 'pods-c' not found, named by label k8s.amazonaws.com/eniConfig of node '${NODE}'`,
    });
    expect(logs.lines.find((l) => String(l.msg).includes('new ENIs held'))?.level).toBe(40);
    api.put(
      'eniconfig',
      'pods-c',
      eniConfig('pods-c', { subnet: 'subnet-0ccc0003', securityGroups: ['sg-0ccc0003'] }),
    );
    await until('the release', () => changes.length === 2);
    expect(changes[1]?.next).toMatchObject({
      eniConfigName: 'pods-c',
      eniConfigProblem: null,
      eniConfig: { subnet: 'subnet-0ccc0003' },
    });
    // Deleting the ENIConfig in use holds new ENIs again.
    api.remove('eniconfig', 'pods-c');
    await until('the problem again', () => changes.length === 3);
    expect(changes[2]?.next.eniConfigProblem).toMatch(/ENIConfig 'pods-c' not found/);
  });

  it('falls back from the zone ENIConfig to "default" and moves when the zone one appears', async () => {
    api.put('node', NODE, node(null));
    api.put('eniconfig', 'default', eniConfig('default', A));
    follow({ initial: { maxPods: 29, eniConfigName: 'default', eniConfig: A } });
    await watching('us-west-2a', 'default');
    expect(changes).toEqual([]);
    api.put('eniconfig', 'us-west-2a', eniConfig('us-west-2a', B));
    await until('the change', () => changes.length === 1);
    expect(changes[0]?.next).toMatchObject({ eniConfigName: 'us-west-2a', eniConfig: B });
  });

  it('keeps the last settings while the API server fails, retrying with backoff, and resyncs by listing', async () => {
    const f = follow({ resyncMs: 300 });
    await watching('pods-a');
    const stats = f.watches[`node/${NODE}`]!;
    // The resync relists without any event and reports nothing when nothing changed.
    await until('two resyncs', () => stats.lists >= 3);
    expect(changes).toEqual([]);
    api.failWith = 500;
    api.dropWatches();
    await until('several failures', () => stats.failures >= 3);
    const retries = logs.lines.filter(
      (l) => l.msg === 'watching the API server failed; keeping the last settings and retrying',
    );
    const delays = retries.map((l) => Number(l.retryMs));
    // Exponential, jittered (50-100% of base * 2^n), capped.
    expect(delays[0]).toBeLessThanOrEqual(20);
    expect(Math.max(...delays)).toBeLessThanOrEqual(200);
    expect(f.current.eniConfig).toEqual(A);
    api.failWith = null;
    api.put('node', NODE, node('pods-b'));
    await until('the change after recovery', () => changes.length === 1);
    expect(changes[0]?.next.eniConfig).toEqual(B);
  });

  it('stops promptly while a list hangs on an unresponsive API server', async () => {
    api.delayMs = 5_000;
    const f = follow();
    await until('the list sent', () => api.urls.length >= 1);
    const t = Date.now();
    await f.stop();
    follower = null;
    api.delayMs = 0;
    expect(Date.now() - t).toBeLessThan(500);
    expect(f.watches[`node/${NODE}`]).toMatchObject({ lists: 0, watches: 0 });
  });

  it('stops promptly with every watch closed', async () => {
    const f = follow();
    await watching('pods-a');
    const t = Date.now();
    await f.stop();
    follower = null;
    expect(Date.now() - t).toBeLessThan(500);
    await until('watches closed', () => api.openWatches('node') === 0 && api.openWatches('eniconfig') === 0);
    api.put('node', NODE, node('pods-b'));
    await new Promise((r) => setTimeout(r, 50));
    expect(changes).toEqual([]);
  });
});
