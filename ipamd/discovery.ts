/**
 * Start-up stage 1, discovery: who this instance is (IMDSv2), what it may hold (instance type, mode,
 * the cluster's max pods and ENIConfig), and which attached ENIs are ipamd's, as IMDS and one EC2
 * describe show them. An ENI IMDS lists but Describe does not show yet (EC2's eventual consistency,
 * typically one ipamd created just before a restart) is kept on IMDS's word, unconfirmed: its
 * addresses stay held for the checkpoint's pods and reconciliation confirms it with EC2 later.
 */
import { lookupInstanceType } from '../lib/instance-types/index.js';
import { createEc2Transport, Ec2Api } from './aws/ec2.js';
import { Imds, type ImdsEni, type InstanceIdentity } from './aws/imds.js';
import { fromImds, imdsOnlyTransport } from './aws/imds-only.js';
import type { Config, EniConfig } from './config.js';
import type { Datastore, EniInfo } from './datastore/datastore.js';
import type { ClusterFollower, FollowedSettings } from './k8s/index.js';
import type { Logger } from './log.js';
import { TAG_INSTANCE_ID, TAG_NO_MANAGE } from './pool/executor.js';
import { poolLimits, prefixModeProblem, type TypeLimits } from './pool/limits.js';
import { isManaged } from './pool/ownership.js';
import type { PoolLimits } from './pool/planner.js';
import { eniInfoFrom } from './pool/reconcile.js';
import { excludedSubnets } from './pool/subnets.js';
import type { IpamHandler } from './server/handler.js';
import { PermanentStartError } from './startup.js';

export type FollowedSettingsHandler = (next: FollowedSettings, prev: FollowedSettings) => void;

export interface ManagedEni {
  info: EniInfo;
  ips: string[];
  prefixes: string[];
  /** Known from IMDS only: EC2's Describe does not show it yet. */
  unconfirmed: boolean;
}

/** What start-up learnt about the node; the rest of the daemon builds on it. */
export interface Discovery {
  imds: Imds;
  ec2: Ec2Api;
  identity: InstanceIdentity;
  primary: ImdsEni;
  type: TypeLimits;
  limits: PoolLimits;
  /** The custom-networking ENIConfig in force (local, else the cluster's). */
  eniConfig: EniConfig | null;
  /** The ENIConfig comes from the cluster and is followed there. */
  eniConfigFromCluster: boolean;
  /** Set in a cluster: keeps following the node and its ENIConfig once the pool exists. */
  followCluster: ((apply: FollowedSettingsHandler) => ClusterFollower) | null;
  /** The ENIConfig the node names (in a cluster), for /v1/eni-configs; followed at run time. */
  eniConfigName: string | null;
  /** The node was cordoned when ipamd read it (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false holds the pool). */
  startedCordoned: boolean;
  /** ANNOTATE_POD_IP with an API server: wraps the handler so each ADD annotates its pod. */
  annotate: ((h: IpamHandler, ds: Pick<Datastore, 'assignments'>) => IpamHandler) | null;
  managed: ManagedEni[];
  /** Attached ENIs ipamd does not manage (no_manage, or untagged with MANAGE_UNTAGGED_ENI=false). */
  unmanaged: Map<string, number>;
  /** Managed secondary ENIs that lack this node's tags. */
  toTag: string[];
  /** Subnets of managed ENIs tagged out of CNI use (v1.22+: kubernetes.io/role/cni=0, cluster scope). */
  excludedSubnets: Set<string>;
}

/** An ENIConfig without security groups means the primary ENI's (the reference's rule). */
export function withGroups(c: EniConfig, primary: ImdsEni): EniConfig {
  return {
    subnet: c.subnet,
    securityGroups: c.securityGroups.length > 0 ? c.securityGroups : primary.securityGroups,
  };
}

async function resolveType(name: string, ec2: Ec2Api): Promise<TypeLimits> {
  const known = lookupInstanceType(name);
  if (known) return known;
  const described = await ec2.describeInstanceType(name);
  if (!described) {
    throw new PermanentStartError(
      `instance type ${name} is unknown to ipamd's table and to DescribeInstanceTypes`,
    );
  }
  return described;
}

/** Who we are: the instance and its ENIs as IMDS lists them. */
async function readImds(imds: Imds, log: Logger) {
  const identity = await imds.identity();
  const seen = await imds.enis();
  const primary = seen.find((e) => e.mac === identity.primaryMac);
  // IMDS lagging behind the instance's own MAC is transient: the next attempt asks again.
  if (!primary) throw new Error(`IMDS lists no ENI with the primary MAC ${identity.primaryMac}`);
  log.info({ ...identity, enis: seen.length }, 'instance discovered');
  return { identity, seen, primary };
}

type ClusterPart = Pick<
  Discovery,
  'eniConfig' | 'eniConfigFromCluster' | 'followCluster' | 'eniConfigName' | 'startedCordoned' | 'annotate'
> & {
  maxPods: number | null;
};

/** In a cluster the node object gives max pods and names the ENIConfig; local settings take precedence. */
async function readCluster(
  cfg: Config,
  log: Logger,
  identity: InstanceIdentity,
  primary: ImdsEni,
): Promise<ClusterPart> {
  const eniConfigFromCluster = cfg.customNetworking && cfg.eniConfig === null;
  const out: ClusterPart = {
    eniConfig: cfg.eniConfig,
    eniConfigFromCluster,
    followCluster: null,
    maxPods: null,
    eniConfigName: null,
    startedCordoned: false,
    annotate: null,
  };
  if (!cfg.cluster) return out;
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
    out.annotate = (h, ds) => k8s.annotatingHandler(h, annotator, (req) => k8s.podOfAttachment(ds, req));
  }
  out.maxPods = cs.maxPods;
  out.eniConfigName = cs.eniConfigName;
  out.startedCordoned = cs.unschedulable === true;
  if (cs.eniConfig && !out.eniConfig) out.eniConfig = withGroups(cs.eniConfig, primary);
  // Nothing to follow when MAX_PODS, a local ENIConfig and AWS_MANAGE_ENIS_NON_SCHEDULABLE decide everything.
  if (access && (eniConfigFromCluster || cfg.maxPods === null || !cfg.manageEnisNonSchedulable)) {
    out.followCluster = (onChange) =>
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
  return out;
}

/**
 * One describe for every attached ENI (tags, addresses as EC2 knows them). By attachment rather than
 * by id: an id IMDS lists but EC2 does not show yet would fail the whole call.
 */
async function classifyEnis(
  cfg: Config,
  log: Logger,
  ec2: Ec2Api,
  identity: InstanceIdentity,
  seen: ImdsEni[],
): Promise<Pick<Discovery, 'managed' | 'unmanaged' | 'toTag'>> {
  const attached = cfg.imdsOnly
    ? seen.map(fromImds)
    : await ec2.findNetworkInterfaces([{ Name: 'attachment.instance-id', Values: [identity.instanceId] }]);
  const described = new Map(attached.map((e) => [e.id, e]));
  const out: Pick<Discovery, 'managed' | 'unmanaged' | 'toTag'> = {
    managed: [],
    unmanaged: new Map(),
    toTag: [],
  };
  const ownership = { instanceId: identity.instanceId, manageUntagged: cfg.manageUntaggedEnis };
  for (const e of seen) {
    const d = described.get(e.id);
    const isPrimary = e.deviceNumber === 0;
    const info = eniInfoFrom(e, d ?? null, !cfg.customNetworking);
    if (!d) {
      // The primary ENI is the instance's for its whole life and always ipamd's: IMDS's word suffices.
      log.warn(
        { eniId: e.id, deviceNumber: e.deviceNumber },
        isPrimary
          ? 'primary ENI not in EC2 yet (a new instance): using its addresses as IMDS lists them'
          : 'ENI in IMDS but not in EC2 yet: holding its addresses on IMDS word until EC2 confirms it',
      );
      out.managed.push({ info, ips: e.secondaryIps, prefixes: e.prefixes, unconfirmed: !isPrimary });
      continue;
    }
    if (!isManaged({ tags: d.tags, isPrimary }, ownership)) {
      out.unmanaged.set(e.id, e.deviceNumber);
      const why =
        d.tags[TAG_NO_MANAGE] === 'true' ? 'tagged no_manage' : 'untagged (MANAGE_UNTAGGED_ENI=false)';
      log.info({ eniId: e.id, deviceNumber: e.deviceNumber }, `ENI ${why}: leaving it alone`);
      continue;
    }
    if (!isPrimary && !cfg.imdsOnly && d.tags[TAG_INSTANCE_ID] !== identity.instanceId) out.toTag.push(e.id);
    out.managed.push({ info, ips: d.secondaryIps, prefixes: d.prefixes, unconfirmed: false });
  }
  return out;
}

/**
 * Discovery; safe to run again after a transient failure (`ec2` is created once and reused).
 * Permanent problems throw PermanentStartError.
 */
export async function discover(
  cfg: Config,
  log: Logger,
  reuse: { imds?: Imds; ec2?: Ec2Api } = {},
): Promise<Discovery> {
  const imds = reuse.imds ?? new Imds(cfg.imdsEndpoint);
  const { identity, seen, primary } = await readImds(imds, log);
  // ENABLE_IMDS_ONLY_MODE: no EC2 call at all (the transport refuses every one).
  const transport = () =>
    cfg.imdsOnly
      ? imdsOnlyTransport()
      : createEc2Transport(cfg.region ?? identity.region, cfg.ec2Endpoint, cfg.ec2UseFips, {
          timeoutMs: cfg.httpTimeoutSeconds * 1000,
        });
  const ec2 =
    reuse.ec2 ??
    new Ec2Api(transport(), {
      maxAttempts: cfg.ec2MaxAttempts,
      mutatingRate: cfg.ec2MutatingRate,
      describeRate: cfg.ec2DescribeRate,
      log: log.child({ component: 'ec2' }),
    });
  reuse.imds = imds;
  reuse.ec2 = ec2;
  const type = await resolveType(identity.instanceType, ec2);
  if (cfg.mode === 'prefix') {
    const problem = prefixModeProblem(type);
    if (problem) throw new PermanentStartError(problem);
  }
  // The API server's answers (node unknown, ENIConfig missing) decide the node's shape: as before, final.
  const cluster = await readCluster(cfg, log, identity, primary).catch((err: Error) => {
    throw new PermanentStartError(err.message, { cause: err });
  });
  const limits = poolLimits(type, {
    mode: cfg.mode,
    maxEni: cfg.maxEni,
    maxPods: cfg.maxPods ?? cluster.maxPods,
  });
  const enis = await classifyEnis(cfg, log, ec2, identity, seen);
  const excluded = cfg.imdsOnly
    ? new Set<string>()
    : await excludedSubnets(
        ec2,
        enis.managed.map((m) => m.info.subnetId),
        cfg.clusterName,
        log.child({ component: 'subnets' }),
      );
  return {
    excludedSubnets: excluded,
    imds,
    ec2,
    identity,
    primary,
    type,
    limits,
    eniConfig: cluster.eniConfig,
    eniConfigFromCluster: cluster.eniConfigFromCluster,
    followCluster: cluster.followCluster,
    eniConfigName: cluster.eniConfigName,
    startedCordoned: cluster.startedCordoned,
    annotate: cluster.annotate,
    ...enis,
  };
}
