/**
 * ipamd's wiring and lifecycle. Startup, in this order:
 *   1. IMDSv2: the instance, its type and every attached ENI;
 *   2. one DescribeNetworkInterfaces for those ENIs (tags: unmanaged ones are left alone);
 *   3. tag managed secondary ENIs that lack this node's tags;
 *   4. host networking for the node and each secondary ENI;
 *   5. rebuild the datastore from EC2, replay the checkpoint;
 *   6. fill the pool until an address can be handed out (or nothing more can be had);
 *   7. only then serve the socket, write the CNI conflist, start introspection and metrics;
 *   8. loops: pool upkeep, reconciliation against IMDS, leaked-ENI cleanup.
 * SIGTERM (stop()): stop growing, let in-flight work finish, close the socket, flush the checkpoint.
 */
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { confinePluginLogs } from '../cni/log.js';
import { lookupInstanceType } from '../lib/instance-types/index.js';
import { createEc2Transport, Ec2Api } from './aws/ec2.js';
import { Imds, type ImdsEni } from './aws/imds.js';
import { fromImds, imdsOnlyTransport } from './aws/imds-only.js';
import { Checkpoint, type CheckpointData } from './checkpoint.js';
import { CniExecutor } from './cni-exec.js';
import type { Config } from './config.js';
import { usesIpTargets } from './config.js';
import { Datastore, type EniInfo } from './datastore/datastore.js';
import { restoreCheckpoint } from './datastore/restore.js';
import { setupEniNetwork, teardownEniNetwork } from './hostnet/eni.js';
import { setupNodeNetwork } from './hostnet/node.js';
import { IpamService } from './ipam-handler.js';
import type { ClusterFollower, FollowedSettings } from './k8s/index.js';
import type { Logger } from './log.js';
import {
  eniMax,
  ipamdNodeInitDuration,
  ipamdStartupDuration,
  ipMax,
  trackAssignedPerCidr,
} from './metrics.js';
import {
  type HostNetwork,
  PoolExecutor,
  TAG_CLUSTER,
  TAG_INSTANCE_ID,
  TAG_NO_MANAGE,
} from './pool/executor.js';
import { cleanLeakedEnis, scheduleSweeps } from './pool/leaked.js';
import { poolLimits, prefixModeProblem, type TypeLimits } from './pool/limits.js';
import { PoolManager } from './pool/manager.js';
import { isManaged } from './pool/ownership.js';
import { reconcile } from './pool/reconcile.js';
import { excludedSubnets, SubnetPicker } from './pool/subnets.js';
import type { IpamHandler } from './server/handler.js';
import { startIntrospectionServer } from './server/introspection.js';
import { startMetricsServer } from './server/metrics-server.js';
import { checkReferenceSocket } from './server/reference-socket.js';
import { ipamdEnvSettings, networkutilsEnvSettings, referenceEnis } from './server/reference-views.js';
import { startSocketServer } from './server/socket.js';

type FollowedSettingsHandler = (next: FollowedSettings, prev: FollowedSettings) => void;

export interface DaemonOptions {
  /** Replaces host networking (unit tests, or a host where another agent owns it). */
  host?: HostNetwork & { setupNode(): Promise<void> };
}

export interface Daemon {
  readonly ds: Datastore;
  readonly pool: PoolManager;
  readonly handler: IpamService;
  stop(): Promise<void>;
}

function hostNetwork(
  cfg: Config,
  log: Logger,
  primary: ImdsEni,
): HostNetwork & { setupNode(): Promise<void> } {
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
        log,
      });
    },
    setupEni: async (e) => {
      if (!e.isPrimary) await setupEniNetwork(spec(e), { log });
    },
    teardownEni: async (e) => {
      if (!e.isPrimary) await teardownEniNetwork(spec(e), { log });
    },
  };
}

async function resolveType(name: string, ec2: Ec2Api): Promise<TypeLimits> {
  const known = lookupInstanceType(name);
  if (known) return known;
  const described = await ec2.describeInstanceType(name);
  if (!described) {
    throw new Error(`instance type ${name} is unknown to ipamd's table and to DescribeInstanceTypes`);
  }
  return described;
}

/** Writes `${dir}/10-aws.conflist` atomically so the runtime never reads half a file. */
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
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(`${JSON.stringify(conf, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  return path;
}

export async function startDaemon(cfg: Config, log: Logger, opts: DaemonOptions = {}): Promise<Daemon> {
  const started = Date.now();
  // 1. Who we are.
  const imds = new Imds(cfg.imdsEndpoint);
  const identity = await imds.identity();
  const seen = await imds.enis();
  const primary = seen.find((e) => e.mac === identity.primaryMac);
  if (!primary) throw new Error(`IMDS lists no ENI with the primary MAC ${identity.primaryMac}`);
  log.info({ ...identity, enis: seen.length }, 'instance discovered');

  const transport = createEc2Transport(cfg.region ?? identity.region, cfg.ec2Endpoint, cfg.ec2UseFips, {
    timeoutMs: cfg.httpTimeoutSeconds * 1000,
  });
  const ec2 = new Ec2Api(cfg.imdsOnly ? imdsOnlyTransport() : transport, {
    maxAttempts: cfg.ec2MaxAttempts,
    mutatingRate: cfg.ec2MutatingRate,
    describeRate: cfg.ec2DescribeRate,
    log: log.child({ component: 'ec2' }),
  });
  const type = await resolveType(identity.instanceType, ec2);
  if (cfg.mode === 'prefix') {
    const problem = prefixModeProblem(type);
    if (problem) throw new Error(problem);
  }
  // In a cluster the node object gives max pods and names the ENIConfig; local settings take precedence.
  let eniConfig = cfg.eniConfig;
  let clusterMaxPods: number | null = null;
  /** The node was cordoned when ipamd read it (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false holds the pool). */
  let startedCordoned = false;
  /** The ENIConfig the node names (in a cluster), for /v1/eni-configs. */
  let eniConfigName: string | null = null;
  const eniConfigFromCluster = cfg.customNetworking && cfg.eniConfig === null;
  // An ENIConfig without security groups means the primary ENI's (the reference's rule).
  const withGroups = (c: { subnet: string; securityGroups: string[] }) => ({
    subnet: c.subnet,
    securityGroups: c.securityGroups.length > 0 ? c.securityGroups : primary.securityGroups,
  });
  // Set in a cluster: keeps following the node and its ENIConfig once the pool exists (step 8).
  let followCluster: ((apply: FollowedSettingsHandler) => ClusterFollower) | null = null;
  // ANNOTATE_POD_IP: wraps the handler once it exists (step 7).
  let annotate: ((h: IpamHandler) => IpamHandler) | null = null;
  if (cfg.cluster) {
    // Loaded only with a cluster: client-node is a separate chunk a daemon without one never reads.
    const k8s = await import('./k8s/index.js');
    const k8sLog = log.child({ component: 'k8s' });
    const access = k8s.detectCluster(process.env, { endpoint: cfg.clusterEndpoint }) ?? undefined;
    const where = { ...cfg.cluster, availabilityZone: identity.availabilityZone };
    const cs = await k8s.readClusterSettings({
      ...where,
      wantEniConfig: eniConfigFromCluster,
      log: k8sLog,
      access,
    });
    if (cfg.annotatePodIp && access) {
      const annotator = new k8s.PodIpAnnotator(access, log.child({ component: 'pod-ips' }));
      annotate = (h) => k8s.annotatingHandler(h, annotator, (req) => k8s.podOfAttachment(ds, req));
    }
    clusterMaxPods = cs.maxPods;
    eniConfigName = cs.eniConfigName;
    if (cs.eniConfig && !eniConfig) eniConfig = withGroups(cs.eniConfig);
    startedCordoned = cs.unschedulable === true;
    // Nothing to follow when MAX_PODS, a local ENIConfig and AWS_MANAGE_ENIS_NON_SCHEDULABLE decide everything.
    if (access && (eniConfigFromCluster || cfg.maxPods === null || !cfg.manageEnisNonSchedulable)) {
      followCluster = (onChange) =>
        new k8s.ClusterFollower({
          ...where,
          access,
          wantEniConfig: eniConfigFromCluster,
          initial: cs,
          onChange,
          log: k8sLog,
          resyncMs: cfg.k8sResyncIntervalSeconds * 1000,
        });
    }
  }
  let limits = poolLimits(type, {
    mode: cfg.mode,
    maxEni: cfg.maxEni,
    maxPods: cfg.maxPods ?? clusterMaxPods,
  });

  // 2. One describe for every attached ENI (tags, addresses as EC2 knows them). By attachment rather
  // than by id: an id IMDS lists but EC2 does not show yet would fail the whole call.
  const attached = cfg.imdsOnly
    ? seen.map(fromImds)
    : await ec2.findNetworkInterfaces([{ Name: 'attachment.instance-id', Values: [identity.instanceId] }]);
  const described = new Map(attached.map((e) => [e.id, e]));
  const unmanaged = new Map<string, number>();
  const ds = new Datastore(cfg.ipCooldownSeconds * 1000);
  trackAssignedPerCidr(() => ds.assignedPerCidr());
  const nodeTags: Record<string, string> = {
    [TAG_INSTANCE_ID]: identity.instanceId,
    ...(cfg.clusterName ? { [TAG_CLUSTER]: cfg.clusterName } : {}),
  };
  const toTag: string[] = [];
  const ownership = { instanceId: identity.instanceId, manageUntagged: cfg.manageUntaggedEnis };
  const managed: { info: EniInfo; ips: string[]; prefixes: string[] }[] = [];
  for (const e of seen) {
    const d = described.get(e.id);
    if (!d) {
      log.warn({ eniId: e.id }, 'ENI in IMDS but not in EC2 yet; reconciliation will pick it up');
      continue;
    }
    const isPrimary = e.deviceNumber === 0;
    if (!isManaged({ tags: d.tags, isPrimary }, ownership)) {
      unmanaged.set(e.id, e.deviceNumber);
      const why =
        d.tags[TAG_NO_MANAGE] === 'true' ? 'tagged no_manage' : 'untagged (MANAGE_UNTAGGED_ENI=false)';
      log.info({ eniId: e.id, deviceNumber: e.deviceNumber }, `ENI ${why}: leaving it alone`);
      continue;
    }
    if (!isPrimary && d.tags[TAG_INSTANCE_ID] !== identity.instanceId) toTag.push(e.id);
    managed.push({
      info: {
        id: e.id,
        mac: e.mac,
        deviceNumber: e.deviceNumber,
        subnetId: e.subnetId,
        subnetCidr: e.subnetCidr,
        primaryIp: d.primaryIp,
        attachmentId: d.attachment?.id ?? null,
        isPrimary,
        forPods: !isPrimary || !cfg.customNetworking,
      },
      ips: d.secondaryIps,
      prefixes: d.prefixes,
    });
  }
  // 3. Tag managed ENIs so leaked-ENI cleanup can attribute them.
  if (toTag.length > 0 && !cfg.imdsOnly) await ec2.createTags(toTag, nodeTags);

  // 4. Host networking.
  const host = opts.host ?? hostNetwork(cfg, log.child({ component: 'hostnet' }), primary);
  await host.setupNode();
  for (const m of managed) await host.setupEni(m.info);

  // 5. Datastore from EC2, then the checkpoint.
  const snapshot = (): CheckpointData => ({
    version: 1,
    allocations: ds.assignments().map((a) => ({ ...a.assignment, address: a.address, eniId: a.eniId })),
    cooldowns: ds.cooldowns(),
  });
  const checkpoint = new Checkpoint(cfg.checkpointPath, snapshot);
  const saved = await checkpoint.load();
  // v1.22+: an ENI in a subnet tagged kubernetes.io/role/cni=0 takes no new pod (the primary's too);
  // one whose pods are in the checkpoint keeps serving them.
  const excluded = cfg.imdsOnly
    ? new Set<string>()
    : await excludedSubnets(
        ec2,
        managed.map((m) => m.info.subnetId),
        cfg.clusterName,
        log.child({ component: 'subnets' }),
      );
  const holding = new Set(saved?.allocations.map((a) => a.eniId) ?? []);
  for (const m of managed) {
    const exclude = excluded.has(m.info.subnetId) && !holding.has(m.info.id);
    ds.addEni(exclude ? { ...m.info, forPods: false } : m.info);
    ds.addIps(m.info.id, m.ips);
    ds.addPrefixes(m.info.id, m.prefixes);
  }
  if (saved) {
    const r = restoreCheckpoint(ds, saved, log.child({ component: 'restore' }));
    log.info({ restored: r.restored, dropped: r.dropped.length }, 'checkpoint replayed');
    if (r.dropped.length > 0) await checkpoint.persist();
  } else {
    await checkpoint.persist();
  }

  // 6. The pool.
  const subnets = new SubnetPicker({
    primary: { subnetId: primary.subnetId, securityGroups: primary.securityGroups },
    customSubnet: eniConfig ? { subnetId: eniConfig.subnet, securityGroups: eniConfig.securityGroups } : null,
    discovery:
      cfg.subnetDiscovery && primary.vpcId && !cfg.imdsOnly
        ? { vpcId: primary.vpcId, availabilityZone: identity.availabilityZone }
        : null,
    clusterName: cfg.clusterName,
    vpc:
      primary.vpcId && !cfg.imdsOnly
        ? { vpcId: primary.vpcId, availabilityZone: identity.availabilityZone }
        : null,
    ec2,
    log: log.child({ component: 'subnets' }),
  });
  // Bound below once the pool exists: an ENI ipamd does not know holds a device index it wants.
  let reconcileSoon = (): void => undefined;
  const executor = new PoolExecutor({
    ec2,
    imds,
    ds,
    identity,
    subnets,
    host,
    log: log.child({ component: 'pool' }),
    eniTags: { ...cfg.additionalEniTags, ...nodeTags },
    onStrayAttachment: () => reconcileSoon(),
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
    limits,
    shrinkIntervalMs: cfg.shrinkIntervalSeconds * 1000,
    disableProvisioning: cfg.disableProvisioning,
    unmanagedDeviceNumbers: () => [...unmanaged.values()],
  });
  // The reference's AWS_MANAGE_ENIS_NON_SCHEDULABLE=false: a cordoned node neither adds nor removes ENIs.
  const holdIfCordoned = (cordoned: boolean) =>
    pool.holdEniChanges(
      cordoned && !cfg.manageEnisNonSchedulable
        ? 'the node is cordoned (node.kubernetes.io/unschedulable): no ENI or address is added or ENI removed; AWS_MANAGE_ENIS_NON_SCHEDULABLE=true lets ipamd change them'
        : null,
    );
  holdIfCordoned(startedCordoned);
  const setLimitGauges = () => {
    eniMax.set(limits.maxEnis - unmanaged.size);
    ipMax.set(
      Math.min(
        limits.maxPods,
        (limits.maxEnis - unmanaged.size) * limits.slotsPerEni * (cfg.mode === 'prefix' ? 16 : 1),
      ),
    );
  };
  setLimitGauges();
  log.info(
    {
      instanceType: type.name,
      mode: cfg.mode,
      limits,
      targets: usesIpTargets(cfg)
        ? { warmIp: cfg.warmIpTarget, minIp: cfg.minimumIpTarget }
        : cfg.mode === 'prefix'
          ? { warmPrefix: cfg.warmPrefixTarget }
          : { warmEni: cfg.warmEniTarget },
      unmanagedEnis: [...unmanaged.keys()],
    },
    'pool configured',
  );

  const runReconcile = () =>
    pool
      .exclusive(() =>
        reconcile({
          imds,
          ec2,
          ds,
          host,
          log: log.child({ component: 'reconcile' }),
          instanceId: identity.instanceId,
          unmanaged,
          primaryForPods: !cfg.customNetworking,
          manageUntagged: cfg.manageUntaggedEnis,
        }),
      )
      .then(() => checkpoint.persist())
      .catch((err) => log.warn({ err: (err as Error).message }, 'reconcile failed; will retry'));
  let reconcileQueued = false;
  reconcileSoon = () => {
    if (reconcileQueued) return;
    reconcileQueued = true;
    setImmediate(() => {
      reconcileQueued = false;
      void runReconcile();
    });
  };

  let stopping = false;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (;;) {
    // One step at a time: serve as soon as an address exists, and let the pool finish growing after.
    await pool.tick(1);
    const atTarget = pool.status.lastAction?.kind === 'none';
    // With provisioning disabled only reconciliation (started after serving) can bring addresses.
    const cannotGrow = pool.status.blocked?.permanent || cfg.disableProvisioning || pool.changesHeld !== null;
    if (ds.stats().ready > 0 || atTarget || cannotGrow || stopping) break;
    const why = pool.status.blocked?.reason ?? pool.status.lastError;
    if (why) {
      log.info({ reason: why }, 'waiting for a first free address before serving');
      await sleep(Math.min(1000, cfg.poolCheckIntervalSeconds * 1000));
    }
  }
  pool.updateGauges();

  // 7. Serve.
  const vpcCidrs = primary.vpcCidrs.length > 0 ? primary.vpcCidrs : [primary.subnetCidr];
  const handler = new IpamService({
    ds,
    checkpoint,
    pool,
    log: log.child({ component: 'ipam' }),
    vpcCidrs,
    snat: cfg.snat,
    podMtu: cfg.podMtu,
    vethPrefix: cfg.vethPrefix,
    // Read per request: max pods can change with the node object.
    get maxPods() {
      return limits.maxPods;
    },
  });
  handler.setReady(null);
  if (cfg.annotatePodIp && !annotate)
    log.warn('ANNOTATE_POD_IP=true but ipamd has no Kubernetes API server: pods are not annotated');
  const served: IpamHandler = annotate ? annotate(handler) : handler;
  // The native aws-cni shim forwards whole CNI calls here: ipamd runs the plugin's handlers itself.
  const cniLog = log.child({ component: 'cni' });
  confinePluginLogs(cfg.pluginLogDir, (file, why) =>
    cniLog.warn({ pluginLogFile: file }, `plugin log refused: ${why}`),
  );
  const cniExec = new CniExecutor(served, cniLog);
  await checkReferenceSocket(cfg.socketPath, log.child({ component: 'socket' }));
  const socket = await startSocketServer({
    path: cfg.socketPath,
    mode: cfg.socketMode,
    ...(cfg.socketGid !== null ? { gid: cfg.socketGid } : {}),
    handler: served,
    cni: (req) => cniExec.run(req),
    log: log.child({ component: 'socket' }),
  });
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
          eniConfigName: () => (cfg.cluster ? (eniConfigName ?? 'default') : null),
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
          config: () => ({ ...cfg, limits, instanceType: type.name, unmanagedEnis: [...unmanaged.keys()] }),
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

  // 8. Loops.
  const timers: NodeJS.Timeout[] = [];
  const every = (seconds: number, fn: () => Promise<unknown>) => {
    const t = setInterval(() => {
      fn().catch((err) => log.error({ err: (err as Error).message }, 'periodic job failed'));
    }, seconds * 1000);
    t.unref();
    timers.push(t);
  };
  every(cfg.poolCheckIntervalSeconds, () => pool.tick());
  // IMDS-only: ENIs and addresses are what the instance had at start (the reference's rule).
  if (!cfg.imdsOnly) every(cfg.reconcileIntervalSeconds, runReconcile);
  let stopSweeps: (() => void) | null = null;
  if (!cfg.disableLeakedEniCleanup && !cfg.disableProvisioning) {
    const leakedLog = log.child({ component: 'leaked-eni' });
    const clean = () =>
      pool
        .exclusive(() =>
          cleanLeakedEnis({
            ec2,
            instanceId: identity.instanceId,
            clusterName: cfg.clusterName,
            scope: cfg.leakedEniScope,
            ...(primary.vpcId ? { vpcId: primary.vpcId } : {}),
            maxAgeMs: cfg.leakedEniAgeSeconds * 1000,
            log: leakedLog,
          }),
        )
        .catch((err) => log.warn({ err: (err as Error).message }, 'leaked-ENI cleanup failed; will retry'));
    stopSweeps = scheduleSweeps({
      intervalMs: cfg.leakedEniIntervalSeconds * 1000,
      startDelayMaxMs: cfg.leakedEniStartDelayMaxSeconds * 1000,
      sweep: clean,
      onWait: (ms) =>
        leakedLog.debug({ inSeconds: Math.round(ms / 1000) }, 'next leaked-ENI sweep after a random delay'),
    });
  }
  // Cluster changes (node relabelled, ENIConfig edited, max pods changed) apply to the next ENI.
  const follower =
    followCluster?.((next, prev) => {
      holdIfCordoned(next.unschedulable ?? false);
      if (next.maxPods !== prev.maxPods && cfg.maxPods !== null) {
        log.info(
          { maxPods: cfg.maxPods, node: next.maxPods },
          'node max pods changed; MAX_PODS keeps precedence',
        );
      } else if (next.maxPods !== prev.maxPods) {
        const before = limits.maxPods;
        limits = poolLimits(type, { mode: cfg.mode, maxEni: cfg.maxEni, maxPods: next.maxPods });
        pool.setLimits(limits);
        setLimitGauges();
        log.info({ from: before, to: limits.maxPods }, `pool max pods ${before} → ${limits.maxPods}`);
      }
      eniConfigName = next.eniConfigName;
      if (eniConfigFromCluster) {
        if (next.eniConfig) {
          const c = withGroups(next.eniConfig);
          subnets.setCustomSubnet({ subnetId: c.subnet, securityGroups: c.securityGroups });
        }
        subnets.hold(next.eniConfigProblem);
      }
      pool.kick();
    }) ?? null;
  follower?.start();

  let stopped: Promise<void> | null = null;
  return {
    ds,
    pool,
    handler,
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        log.info('shutting down: no more growth, finishing in-flight work');
        for (const t of timers) clearInterval(t);
        stopSweeps?.();
        await follower?.stop();
        handler.setReady('ipamd is shutting down');
        await pool.stop();
        await socket.close();
        await checkpoint.persist();
        await Promise.allSettled(servers.map((s) => s.close()));
        await ec2.drain();
        log.info(ds.stats(), 'ipamd stopped; checkpoint flushed');
      })();
      return stopped;
    },
  };
}
