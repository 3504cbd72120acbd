/**
 * ipamd's wiring and lifecycle. Start-up is a pipeline of named stages, each taking what the last
 * produced, with the node's state in one object (`NodeState`):
 *   0. the run directories (socket, checkpoint) exist and only root can write them (run-dir.ts); read
 *      the checkpoint and open the socket at once (not ready; releases served from the checkpoint);
 *   1. discover: IMDS, the instance type, the cluster's settings, one EC2 describe of the ENIs;
 *   2. set up the host: tag managed ENIs, node networking, each confirmed secondary ENI;
 *   3. replay state: the datastore from IMDS/EC2 plus the checkpoint (from here the datastore answers);
 *   4. build the pool and fill it until an address can be handed out (or nothing more can be had);
 *   5. serve: ready, CNI conflist, introspection and metrics;
 *   6. start the loops: pool upkeep, DELs that ran while ipamd was away, reconciliation against
 *      IMDS/EC2, leaked-ENI cleanup, cluster follow.
 * A stage that fails for a transient reason (EC2 5xx or throttling, timeouts, IMDS lag) is retried with
 * backoff while the socket says why ipamd is not ready; only permanent errors end start-up.
 * SIGTERM (stop()): stop growing, let in-flight work finish, close the socket, flush the checkpoint.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { confinePluginLogs } from '../cni/log.js';
import { type Owned, removeHostLeftovers } from '../cni/plumbing.js';
import { writeFileAtomic } from '../lib/fs/atomic.js';
import { pendingDelDir } from '../lib/protocol/pending-del.js';
import type { Ec2Api } from './aws/ec2.js';
import type { ImdsEni } from './aws/imds.js';
import { Checkpoint, type CheckpointData } from './checkpoint.js';
import { CniExecutor } from './cni-exec.js';
import type { Config } from './config.js';
import { usesIpTargets } from './config.js';
import { Datastore, type EniInfo } from './datastore/datastore.js';
import { restoreCheckpoint } from './datastore/restore.js';
import { SavedAssignments } from './datastore/saved.js';
import { type Discovery, discover, withGroups } from './discovery.js';
import { setupEniNetwork, teardownEniNetwork } from './hostnet/eni.js';
import { setupNodeNetwork } from './hostnet/node.js';
import { IpamService } from './ipam-handler.js';
import type { ClusterFollower } from './k8s/index.js';
import type { Logger } from './log.js';
import {
  eniMax,
  ipamdNodeInitDuration,
  ipamdStartupDuration,
  ipMax,
  trackAssignedPerCidr,
} from './metrics.js';
import { releasePendingDels } from './pending-dels.js';
import { type HostNetwork, PoolExecutor, TAG_CLUSTER, TAG_INSTANCE_ID } from './pool/executor.js';
import { cleanLeakedEnis, scheduleSweeps } from './pool/leaked.js';
import { poolLimits } from './pool/limits.js';
import { PoolManager } from './pool/manager.js';
import { Reconciler } from './pool/reconcile.js';
import { SubnetPicker } from './pool/subnets.js';
import { ensureRunDirs } from './run-dir.js';
import { exposedPorts } from './server/bind.js';
import { startIntrospectionServer } from './server/introspection.js';
import { startMetricsServer } from './server/metrics-server.js';
import { checkReferenceSocket } from './server/reference-socket.js';
import { ipamdEnvSettings, networkutilsEnvSettings, referenceEnis } from './server/reference-views.js';
import { type SocketServer, startSocketServer } from './server/socket.js';
import { retryStage, StartupGate } from './startup.js';

export interface DaemonOptions {
  /** Replaces host networking (unit tests, or a host where another agent owns it). */
  host?: Host;
}

export interface Daemon {
  readonly ds: Datastore;
  readonly pool: PoolManager;
  readonly handler: IpamService;
  stop(): Promise<void>;
}

/**
 * How long EC2 and IMDS must agree that an ENI is gone before ipamd forgets it. EC2 does not document
 * its consistency window; new ENIs usually show in Describe within seconds.
 */
const CONSISTENCY_WINDOW_MS = 30_000;
/** Reconcile this often while something waits for EC2 to confirm it (capped by the reconcile interval). */
const PENDING_RECONCILE_MS = 2_000;

type Host = HostNetwork & {
  setupNode(): Promise<void>;
  /** Removes the host routing of a pod that is gone (rules; its veth when the MAC matches). */
  removePodLeftovers?(owned: Owned): Promise<void>;
};

/** The node's state: built up stage by stage, then shared by the loops and stop(). */
interface NodeState extends Discovery {
  cfg: Config;
  log: Logger;
  host: Host;
  ds: Datastore;
  checkpoint: Checkpoint;
  service: IpamService;
  subnets: SubnetPicker;
  pool: PoolManager;
  reconciler: Reconciler;
  /** Asks for a reconciliation soon (an unknown ENI holds a device index, EC2 disagrees). */
  reconcileSoon: () => void;
  /**
   * Device indexes EC2 said hold an ENI ipamd does not know yet: skipped by the pool until the next
   * reconciliation adopts (or sets aside) that ENI, so no attach is retried at a taken index meanwhile.
   */
  strangers: Set<number>;
  /** Runs the plugin's calls in-process; also removes host state of a release made without a call. */
  cniExec: CniExecutor;
  stopping: boolean;
}

function hostNetwork(cfg: Config, log: Logger, primary: ImdsEni): Host {
  const spec = (e: EniInfo) => ({
    mac: e.mac,
    deviceNumber: e.deviceNumber,
    primaryIp: e.primaryIp,
    subnetCidr: e.subnetCidr,
    mtu: cfg.eniMtu,
  });
  return {
    setupNode: async () => {
      await setupNodeNetwork({
        primaryMac: primary.mac,
        primaryIp: primary.primaryIp,
        vpcCidrs: primary.vpcCidrs,
        snat: cfg.snat,
        vethPrefix: cfg.vethPrefix,
        mtu: cfg.eniMtu,
        nodePortSupport: cfg.nodePortSupport,
        setSysctls: cfg.setSysctls,
        connmark: cfg.connmark,
        externalServiceCidrs: cfg.externalServiceCidrs,
        blockPodImds: cfg.blockPodImds,
        podClosedTcpPorts: exposedPorts([cfg.metricsBind, cfg.introspectionBind]),
        log,
      });
    },
    setupEni: async (e) => {
      if (!e.isPrimary) await setupEniNetwork(spec(e), { log });
    },
    teardownEni: async (e) => {
      if (!e.isPrimary) await teardownEniNetwork(spec(e), { log });
    },
    removePodLeftovers: removeHostLeftovers,
  };
}

/** Writes `${dir}/10-aws.conflist` (0644) atomically so the runtime never reads half a file. */
export async function writeConflist(
  dir: string,
  socketPath: string,
  pluginLog: { file: string; level: string } = { file: 'stderr', level: 'debug' },
): Promise<string> {
  const conf = {
    cniVersion: '1.0.0',
    name: 'aws-cni',
    plugins: [
      {
        type: 'aws-cni',
        name: 'aws-cni',
        cniVersion: '1.0.0',
        ipamdSocket: socketPath,
        // AWS_VPC_K8S_PLUGIN_LOG_FILE / _LEVEL, as the reference's conflist carries them.
        pluginLogFile: pluginLog.file,
        pluginLogLevel: pluginLog.level,
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
  await mkdir(dir, { recursive: true });
  const path = join(dir, '10-aws.conflist');
  await writeFileAtomic(path, `${JSON.stringify(conf, null, 2)}\n`, 0o644);
  return path;
}

function nodeTags(cfg: Config, d: Discovery): Record<string, string> {
  return {
    [TAG_INSTANCE_ID]: d.identity.instanceId,
    ...(cfg.clusterName ? { [TAG_CLUSTER]: cfg.clusterName } : {}),
  };
}

/** Stage 2: tags, node networking, each secondary ENI EC2 confirms (the others wait for it). */
async function setUpHost(cfg: Config, d: Discovery, host: Host): Promise<void> {
  if (d.toTag.length > 0 && !cfg.imdsOnly) {
    // Tags let leaked-ENI cleanup attribute the ENIs; the next attempt need not tag again.
    await d.ec2.createTags(d.toTag, nodeTags(cfg, d));
    d.toTag = [];
  }
  await host.setupNode();
  for (const m of d.managed) if (!m.unconfirmed) await host.setupEni(m.info);
}

/**
 * Stage 3: the datastore from what discovery found, then the checkpoint replayed into it. Synchronous,
 * and so is handing over to it (startDaemon): no release can slip between the replay and the take-over.
 */
export function replayState(
  cfg: Config,
  log: Logger,
  d: Discovery,
  saved: SavedAssignments,
  /** Receives the host routing of pods whose namespace is gone (dropped without a DEL). */
  gone: Owned[] = [],
): Datastore {
  const ds = new Datastore(cfg.ipCooldownSeconds * 1000);
  trackAssignedPerCidr(() => ds.assignedPerCidr());
  const snapshot = saved.snapshot();
  // v1.22+: an ENI in a subnet tagged out of CNI use takes no new pod (the primary's too); one whose
  // pods are in the checkpoint keeps serving them.
  const holding = new Set(snapshot.allocations.map((a) => a.eniId));
  for (const m of d.managed) {
    const exclude = d.excludedSubnets.has(m.info.subnetId) && !holding.has(m.info.id);
    ds.addEni(exclude ? { ...m.info, forPods: false } : m.info, { unconfirmed: m.unconfirmed });
    ds.addIps(m.info.id, m.ips);
    ds.addPrefixes(m.info.id, m.prefixes);
  }
  const r = restoreCheckpoint(ds, snapshot, log.child({ component: 'restore' }));
  log.info({ restored: r.restored, held: r.held, dropped: r.dropped.length }, 'checkpoint replayed');
  gone.push(...r.unwire);
  return ds;
}

function snapshotOf(ds: Datastore): CheckpointData {
  return {
    version: 1,
    allocations: ds.assignments().map((a) => ({ ...a.assignment, address: a.address, eniId: a.eniId })),
    cooldowns: ds.cooldowns(),
  };
}

function ipamService(cfg: Config, log: Logger, d: Discovery, ds: Datastore, checkpoint: Checkpoint) {
  const vpcCidrs = d.primary.vpcCidrs.length > 0 ? d.primary.vpcCidrs : [d.primary.subnetCidr];
  return new IpamService({
    ds,
    checkpoint,
    log: log.child({ component: 'ipam' }),
    vpcCidrs,
    snat: cfg.snat,
    podMtu: cfg.podMtu,
    vethPrefix: cfg.vethPrefix,
    // Read per request: max pods can change with the node object.
    get maxPods() {
      return d.limits.maxPods;
    },
  });
}

function setLimitGauges(n: Pick<NodeState, 'cfg' | 'limits' | 'unmanaged'>): void {
  const enis = n.limits.maxEnis - n.unmanaged.size;
  eniMax.set(enis);
  ipMax.set(Math.min(n.limits.maxPods, enis * n.limits.slotsPerEni * (n.cfg.mode === 'prefix' ? 16 : 1)));
}

/** Stage 4a: subnets, executor, manager, reconciler. */
function buildPool(
  n: Pick<NodeState, 'cfg' | 'log' | 'ds' | 'host' | 'service' | 'reconcileSoon' | 'strangers'> & Discovery,
): Pick<NodeState, 'subnets' | 'pool' | 'reconciler'> {
  const { cfg, log, ds, host } = n;
  const subnets = new SubnetPicker({
    primary: { subnetId: n.primary.subnetId, securityGroups: n.primary.securityGroups },
    customSubnet: n.eniConfig
      ? { subnetId: n.eniConfig.subnet, securityGroups: n.eniConfig.securityGroups }
      : null,
    discovery:
      cfg.subnetDiscovery && n.primary.vpcId && !cfg.imdsOnly
        ? { vpcId: n.primary.vpcId, availabilityZone: n.identity.availabilityZone }
        : null,
    clusterName: cfg.clusterName,
    vpc:
      n.primary.vpcId && !cfg.imdsOnly
        ? { vpcId: n.primary.vpcId, availabilityZone: n.identity.availabilityZone }
        : null,
    ec2: n.ec2,
    log: log.child({ component: 'subnets' }),
  });
  const executor = new PoolExecutor({
    ec2: n.ec2,
    imds: n.imds,
    ds,
    identity: n.identity,
    subnets,
    host,
    log: log.child({ component: 'pool' }),
    eniTags: { ...cfg.additionalEniTags, ...nodeTags(cfg, n) },
    // An ENI ipamd does not know holds a device index it wants (reconcileSoon is bound by the loops).
    onStrayAttachment: (deviceNumber) => {
      n.strangers.add(deviceNumber);
      n.reconcileSoon();
    },
  });
  const pool = new PoolManager({
    ds,
    executor,
    subnets,
    log: log.child({ component: 'pool' }),
    mode: cfg.mode,
    targets: {
      warmEni: cfg.warmEniTarget,
      warmIp: cfg.warmIpTarget,
      minIp: cfg.minimumIpTarget,
      warmPrefix: cfg.warmPrefixTarget,
    },
    limits: n.limits,
    shrinkIntervalMs: cfg.shrinkIntervalSeconds * 1000,
    disableProvisioning: cfg.disableProvisioning,
    unmanagedDeviceNumbers: () => [...n.unmanaged.values(), ...n.strangers],
    // EC2 knows more addresses on the ENI than ipamd: learn them now rather than in a minute.
    onAddressLimit: () => n.reconcileSoon(),
  });
  const reconciler = new Reconciler({
    imds: n.imds,
    ec2: n.ec2,
    ds,
    host,
    log: log.child({ component: 'reconcile' }),
    instanceId: n.identity.instanceId,
    unmanaged: n.unmanaged,
    primaryForPods: !cfg.customNetworking,
    consistencyWindowMs: CONSISTENCY_WINDOW_MS,
    manageUntagged: cfg.manageUntaggedEnis,
  });
  n.service.setPool(pool);
  holdIfCordoned({ cfg, pool }, n.startedCordoned);
  setLimitGauges(n);
  log.info(
    {
      instanceType: n.type.name,
      mode: cfg.mode,
      limits: n.limits,
      targets: usesIpTargets(cfg)
        ? { warmIp: cfg.warmIpTarget, minIp: cfg.minimumIpTarget }
        : cfg.mode === 'prefix'
          ? { warmPrefix: cfg.warmPrefixTarget }
          : { warmEni: cfg.warmEniTarget },
      unmanagedEnis: [...n.unmanaged.keys()],
    },
    'pool configured',
  );
  return { subnets, pool, reconciler };
}

/** The reference's AWS_MANAGE_ENIS_NON_SCHEDULABLE=false: a cordoned node neither adds nor removes ENIs. */
function holdIfCordoned(n: { cfg: Config; pool: PoolManager }, cordoned: boolean): void {
  n.pool.holdEniChanges(
    cordoned && !n.cfg.manageEnisNonSchedulable
      ? 'the node is cordoned (node.kubernetes.io/unschedulable): no ENI or address is added or ENI removed; AWS_MANAGE_ENIS_NON_SCHEDULABLE=true lets ipamd change them'
      : null,
  );
}

/** Stage 4b: one step at a time until an address exists; the pool finishes growing after serving. */
async function fillPool(n: NodeState, gate: StartupGate): Promise<void> {
  const { cfg, ds, pool, log } = n;
  for (;;) {
    await pool.tick(1);
    const atTarget = pool.status.lastAction?.kind === 'none';
    // With provisioning disabled only reconciliation (started after serving) can bring addresses;
    // waiting for EC2 to show an ENI it hides is for the loops too (ADD is told to retry meanwhile).
    const blocked = pool.status.blocked;
    const cannotGrow =
      blocked?.permanent || blocked?.retrySoon || cfg.disableProvisioning || pool.changesHeld !== null;
    if (ds.stats().ready > 0 || atTarget || cannotGrow || n.stopping) break;
    const why = pool.status.blocked?.reason ?? pool.status.lastError;
    gate.setReason(`waiting for a first free address${why ? ` (${why})` : ''}`);
    if (why) {
      log.info({ reason: why }, 'waiting for a first free address before serving');
      await new Promise((r) => setTimeout(r, Math.min(1000, cfg.poolCheckIntervalSeconds * 1000)));
    }
  }
  pool.updateGauges();
}

/** Stage 5: ready, conflist, introspection, metrics. */
async function serve(n: NodeState, started: number): Promise<{ close(): Promise<void> }[]> {
  const { cfg, log, ds, pool } = n;
  n.service.setReady(null);
  if (cfg.writeCniConflist) {
    const path = await writeConflist(cfg.cniConfDir, cfg.socketPath, {
      file: cfg.pluginLogFile,
      level: cfg.pluginLogLevel,
    });
    log.info({ path }, 'CNI conflist written');
  }
  const servers: { close(): Promise<void> }[] = [];
  if (cfg.introspectionBind) {
    servers.push(
      await startIntrospectionServer({
        bind: cfg.introspectionBind,
        log,
        views: {
          referenceEnis: () => referenceEnis(ds, { cooldownMs: cfg.ipCooldownSeconds * 1000 }),
          // In a cluster, the name the node gives (the reference's "default" when it names none).
          eniConfigName: () => (cfg.cluster ? (n.eniConfigName ?? 'default') : null),
          networkutilsEnv: () => networkutilsEnvSettings(cfg),
          ipamdEnv: () => ipamdEnvSettings(cfg),
          enis: () =>
            ds.eniStats().map((s) => ({
              ...s.eni,
              secondaryIps: [...s.eni.secondaryIps],
              prefixes: [...s.eni.prefixes],
              total: s.total,
              assigned: s.assigned,
              cooling: s.cooling,
              ready: s.ready,
            })),
          pods: () => ds.assignments(),
          config: () => ({
            ...cfg,
            limits: n.limits,
            instanceType: n.type.name,
            unmanagedEnis: [...n.unmanaged.keys()],
          }),
          health: () => ({ ...ds.stats(), pool: pool.status }),
        },
      }),
    );
  }
  if (cfg.metricsBind) servers.push(await startMetricsServer({ bind: cfg.metricsBind, log }));
  // The reference's start-up histograms: node initialisation (IMDS to pool ready), and process start to serving.
  ipamdNodeInitDuration.observe({ success: 'true' }, (Date.now() - started) / 1000);
  ipamdStartupDuration.observe(
    { success: 'true', with_api_server: String(cfg.cluster !== null), failure_reason: '' },
    performance.now() / 1000,
  );
  log.info({ socket: cfg.socketPath, startupMs: Date.now() - started, ...ds.stats() }, 'ipamd serving');
  pool.kick();
  return servers;
}

/** Stage 6: periodic jobs, reconciliation on demand, and the cluster follower. Returns their stop. */
function startLoops(n: NodeState): () => Promise<void> {
  const { cfg, log, pool } = n;
  const timers: NodeJS.Timeout[] = [];
  const every = (seconds: number, fn: () => Promise<unknown>) => {
    const t = setInterval(() => {
      fn().catch((err) => log.error({ err: (err as Error).message }, 'periodic job failed'));
    }, seconds * 1000);
    t.unref();
    timers.push(t);
  };
  let queued = false;
  let followUp: NodeJS.Timeout | null = null;
  // Something waits for EC2 (an ENI it does not show yet, one that may be gone): look again soon.
  const lookAgainSoon = () => {
    if (!n.reconciler.pending || n.stopping || followUp) return;
    followUp = setTimeout(
      () => {
        followUp = null;
        n.reconcileSoon();
      },
      Math.min(PENDING_RECONCILE_MS, cfg.reconcileIntervalSeconds * 1000),
    );
    followUp.unref();
  };
  const runReconcile = (): Promise<void> =>
    pool
      .exclusive(async () => {
        await n.reconciler.run();
        n.strangers.clear(); // adopted or set aside by now: the datastore and `unmanaged` say which
      })
      .then(() => n.checkpoint.persist())
      .catch((err) => log.warn({ err: (err as Error).message }, 'reconcile failed; will retry'))
      .then(lookAgainSoon);
  n.reconcileSoon = () => {
    if (queued || n.stopping) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      void runReconcile();
    });
  };
  every(cfg.poolCheckIntervalSeconds, () => pool.tick());
  // DELs the plugin ran while ipamd was away (lib/protocol/pending-del.ts): now, then every pool tick.
  const pendingDels = () =>
    releasePendingDels({
      dir: pendingDelDir(cfg.socketPath),
      ipam: n.service,
      unwireHost: (owned) => n.cniExec.removeHostLeftovers(owned),
      log: log.child({ component: 'pending-del' }),
    });
  pendingDels().catch((err) => log.warn({ err: (err as Error).message }, 'pending DELs not processed'));
  every(cfg.poolCheckIntervalSeconds, pendingDels);
  // IMDS-only: ENIs and addresses are what the instance had at start (the reference's rule).
  if (!cfg.imdsOnly) {
    every(cfg.reconcileIntervalSeconds, runReconcile);
    if (n.reconciler.pending) n.reconcileSoon();
  }
  let stopSweeps: (() => void) | null = null;
  if (!cfg.disableLeakedEniCleanup && !cfg.disableProvisioning) {
    const leakedLog = log.child({ component: 'leaked-eni' });
    const clean = () =>
      pool
        .exclusive(() =>
          cleanLeakedEnis({
            ec2: n.ec2,
            instanceId: n.identity.instanceId,
            clusterName: cfg.clusterName,
            scope: cfg.leakedEniScope,
            ...(n.primary.vpcId ? { vpcId: n.primary.vpcId } : {}),
            maxAgeMs: cfg.leakedEniAgeSeconds * 1000,
            log: leakedLog,
          }),
        )
        .catch((err) => log.warn({ err: (err as Error).message }, 'leaked-ENI cleanup failed; will retry'));
    // A random delay before each sweep: a fleet started together must not sweep in lock-step.
    stopSweeps = scheduleSweeps({
      intervalMs: cfg.leakedEniIntervalSeconds * 1000,
      startDelayMaxMs: cfg.leakedEniStartDelayMaxSeconds * 1000,
      sweep: clean,
      onWait: (ms) =>
        leakedLog.debug({ inSeconds: Math.round(ms / 1000) }, 'next leaked-ENI sweep after a random delay'),
    });
  }
  const follower = followCluster(n);
  follower?.start();
  return async () => {
    for (const t of timers) clearInterval(t);
    if (followUp) clearTimeout(followUp);
    stopSweeps?.();
    await follower?.stop();
  };
}

/** Cluster changes (node relabelled, ENIConfig edited, max pods changed) apply to the next ENI. */
function followCluster(n: NodeState): ClusterFollower | null {
  const { cfg, log, pool, subnets } = n;
  return (
    n.followCluster?.((next, prev) => {
      holdIfCordoned(n, next.unschedulable ?? false);
      n.eniConfigName = next.eniConfigName;
      if (next.maxPods !== prev.maxPods && cfg.maxPods !== null) {
        log.info(
          { maxPods: cfg.maxPods, node: next.maxPods },
          'node max pods changed; MAX_PODS keeps precedence',
        );
      } else if (next.maxPods !== prev.maxPods) {
        const before = n.limits.maxPods;
        n.limits = poolLimits(n.type, { mode: cfg.mode, maxEni: cfg.maxEni, maxPods: next.maxPods });
        pool.setLimits(n.limits);
        setLimitGauges(n);
        log.info({ from: before, to: n.limits.maxPods }, `pool max pods ${before} → ${n.limits.maxPods}`);
      }
      if (n.eniConfigFromCluster) {
        if (next.eniConfig) {
          const c = withGroups(next.eniConfig, n.primary);
          subnets.setCustomSubnet({ subnetId: c.subnet, securityGroups: c.securityGroups });
        }
        subnets.hold(next.eniConfigProblem);
      }
      pool.kick();
    }) ?? null
  );
}

export async function startDaemon(cfg: Config, log: Logger, opts: DaemonOptions = {}): Promise<Daemon> {
  const started = Date.now();
  // 0. Where the socket and the checkpoint live: nobody but root may write there.
  await ensureRunDirs([dirname(cfg.socketPath), dirname(cfg.checkpointPath)]);
  // The checkpoint first (local, fast): from the first moment ipamd answers, it can release.
  let snapshot: () => CheckpointData;
  const checkpoint = new Checkpoint(cfg.checkpointPath, () => snapshot());
  const saved = new SavedAssignments(await checkpoint.load(), cfg.ipCooldownSeconds * 1000);
  snapshot = () => saved.snapshot();
  const gate = new StartupGate(saved, () => checkpoint.persist(), log.child({ component: 'ipam' }));
  // The native aws-cni shim forwards whole CNI calls here: ipamd runs the plugin's handlers itself.
  const cniLog = log.child({ component: 'cni' });
  // A forwarded call's pluginLogFile is opened only inside IPAMD_PLUGIN_LOG_DIR (cni/log.ts).
  confinePluginLogs(cfg.pluginLogDir, (file, why) =>
    cniLog.warn({ pluginLogFile: file }, `plugin log refused: ${why}`),
  );
  const cniExec = new CniExecutor(gate, cniLog);
  await checkReferenceSocket(cfg.socketPath, log.child({ component: 'socket' }));
  const socket = await startSocketServer({
    path: cfg.socketPath,
    mode: cfg.socketMode,
    ...(cfg.socketGid !== null ? { gid: cfg.socketGid } : {}),
    handler: gate,
    cni: (req, fds) => cniExec.run(req, fds),
    log: log.child({ component: 'socket' }),
  });
  log.info({ socket: cfg.socketPath }, 'ipamd socket open; not ready until the pool can hand out an address');
  try {
    const retry = { log, onWait: (reason: string) => gate.setReason(reason) };
    // 1. Discover.
    gate.setReason('discovering the instance and its ENIs');
    const reuse: { ec2?: Ec2Api } = {};
    const d = await retryStage('discover', () => discover(cfg, log, reuse), retry);
    // 2. The host.
    gate.setReason('setting up host networking');
    const host = opts.host ?? hostNetwork(cfg, log.child({ component: 'hostnet' }), d.primary);
    await retryStage('host', () => setUpHost(cfg, d, host), retry);
    // 3. Replay: from here releases and reads go to the datastore.
    const gone: Owned[] = [];
    const ds = replayState(cfg, log, d, saved, gone);
    const service = ipamService(cfg, log, d, ds, checkpoint);
    snapshot = () => snapshotOf(ds);
    if (cfg.annotatePodIp && !d.annotate)
      log.warn('ANNOTATE_POD_IP=true but ipamd has no Kubernetes API server: pods are not annotated');
    gate.open(service, d.annotate ? d.annotate(service, ds) : service);
    await retryStage('checkpoint', () => checkpoint.persist(), retry);
    // Pods gone without a DEL left their rules (and maybe a veth) behind: removed before ipamd is
    // ready, so no new pod can have been handed one of their addresses yet.
    for (const owned of gone) {
      await host
        .removePodLeftovers?.(owned)
        .catch((err) =>
          log.warn({ address: owned.address, err: (err as Error).message }, 'host state of a gone pod left'),
        );
    }
    // 4. The pool.
    const base = Object.assign(d, {
      cfg,
      log,
      host,
      ds,
      checkpoint,
      service,
      reconcileSoon: (): void => undefined,
      cniExec,
      strangers: new Set<number>(),
      stopping: false,
    });
    const n: NodeState = Object.assign(base, buildPool(base));
    gate.setReason('filling the pool');
    await fillPool(n, gate);
    // 5. Serve, 6. loops.
    const servers = await serve(n, started);
    const stopLoops = startLoops(n);
    return daemonOf(n, { socket, servers, stopLoops });
  } catch (err) {
    await socket.close().catch(() => undefined);
    throw err;
  }
}

function daemonOf(
  n: NodeState,
  run: { socket: SocketServer; servers: { close(): Promise<void> }[]; stopLoops: () => Promise<void> },
): Daemon {
  let stopped: Promise<void> | null = null;
  return {
    ds: n.ds,
    pool: n.pool,
    handler: n.service,
    stop: () => {
      stopped ??= (async () => {
        n.stopping = true;
        n.log.info('shutting down: no more growth, finishing in-flight work');
        await run.stopLoops();
        n.service.close('ipamd is shutting down');
        await n.pool.stop();
        await run.socket.close();
        await n.checkpoint.persist();
        await Promise.allSettled(run.servers.map((s) => s.close()));
        await n.ec2.drain();
        n.log.info(n.ds.stats(), 'ipamd stopped; checkpoint flushed');
      })();
      return stopped;
    },
  };
}
