/**
 * Prometheus metrics, named as the AWS VPC CNI names them so existing dashboards keep working.
 * One registry for the daemon; the metrics server serves it at /metrics.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { VPC_CNI_VERSION } from './version.js';

export const registry = new Registry();

export const eniAllocated = new Gauge({
  name: 'awscni_eni_allocated',
  help: 'The number of ENIs allocated',
  registers: [registry],
});
export const eniMax = new Gauge({
  name: 'awscni_eni_max',
  help: 'The maximum number of ENIs that can be attached to the instance, accounting for unmanaged ENIs',
  registers: [registry],
});
export const ipMax = new Gauge({
  name: 'awscni_ip_max',
  help: 'The maximum number of IP addresses that can be allocated to the instance',
  registers: [registry],
});
export const totalIpAddresses = new Gauge({
  name: 'awscni_total_ip_addresses',
  help: 'The total number of IP addresses',
  registers: [registry],
});
export const assignedIpAddresses = new Gauge({
  name: 'awscni_assigned_ip_addresses',
  help: 'The number of IP addresses assigned to pods',
  registers: [registry],
});
export const totalPrefixes = new Gauge({
  name: 'awscni_total_ipv4_prefixes',
  help: 'The total number of IPv4 prefixes',
  registers: [registry],
});
/** Where awscni_assigned_ip_per_cidr reads the pool from (the daemon's datastore); unset = no series. */
let assignedPerCidrSource: (() => Map<string, number>) | null = null;

/**
 * Read from the datastore whenever the registry is collected, so it follows every assignment,
 * release and checkpoint restore, and a CIDR that leaves the pool loses its series at once.
 */
export const assignedIpPerCidr = new Gauge({
  name: 'awscni_assigned_ip_per_cidr',
  help: 'The total number of IP addresses assigned per cidr',
  labelNames: ['cidr'],
  registers: [registry],
  collect() {
    if (!assignedPerCidrSource) return;
    this.reset();
    for (const [cidr, n] of assignedPerCidrSource()) this.set({ cidr }, n);
  },
});

/** Binds awscni_assigned_ip_per_cidr to the pool's per-CIDR counts (null unbinds and clears it). */
export function trackAssignedPerCidr(source: (() => Map<string, number>) | null): void {
  assignedPerCidrSource = source;
  assignedIpPerCidr.reset();
}
export const assignedIpPerEni = new Gauge({
  name: 'awscni_assigned_ip_per_eni',
  help: 'The number of allocated ips partitioned by eni',
  labelNames: ['eni'],
  registers: [registry],
});
export const ipamdErrors = new Counter({
  name: 'awscni_ipamd_error_count',
  help: 'The number of errors encountered in ipamd',
  labelNames: ['fn'],
  registers: [registry],
});
/** A gauge, as in the reference: inc() when a pool action starts, dec() when it ends. */
export const ipamdActions = new Gauge({
  name: 'awscni_ipamd_action_inprogress',
  help: 'The number of ipamd actions in progress',
  labelNames: ['fn'],
  registers: [registry],
});
export const ec2ApiRequests = new Counter({
  name: 'awscni_ec2api_req_count',
  help: 'The number of requests made to EC2 APIs by the CNI',
  labelNames: ['fn'],
  registers: [registry],
});
export const ec2ApiErrors = new Counter({
  name: 'awscni_ec2api_error_count',
  help: 'The number of failed EC2 API requests',
  labelNames: ['fn'],
  registers: [registry],
});
/** A summary without quantiles (sum and count), as the reference's SummaryVec is. */
export const awsApiLatency = new Summary({
  name: 'awscni_aws_api_latency_ms',
  help: 'AWS API call latency in ms',
  labelNames: ['api', 'error', 'status'],
  percentiles: [],
  registers: [registry],
});
export const noAvailableIpAddresses = new Counter({
  name: 'awscni_no_available_ip_addresses',
  help: 'The number of pod IP assignments that failed because no address was available',
  registers: [registry],
});
export const forceRemovedEnis = new Counter({
  name: 'awscni_force_removed_enis',
  help: 'The number of ENIs force removed while they had assigned pods',
  registers: [registry],
});
export const forceRemovedIps = new Counter({
  name: 'awscni_force_removed_ips',
  help: 'The number of IPs force removed while they had assigned pods',
  registers: [registry],
});
export const awsApiErrors = new Counter({
  name: 'awscni_aws_api_error_count',
  help: 'The number of times AWS API returns an error',
  labelNames: ['api', 'error'],
  registers: [registry],
});
export const addIpRequests = new Counter({
  name: 'awscni_add_ip_req_count',
  help: 'The number of add IP address requests',
  registers: [registry],
});
export const delIpRequests = new Counter({
  name: 'awscni_del_ip_req_count',
  help: 'The number of delete IP address requests',
  labelNames: ['reason'],
  registers: [registry],
});
export const reconcileCount = new Counter({
  name: 'awscni_reconcile_count',
  help: 'The number of reconciliations against IMDS, by what was fixed',
  labelNames: ['fn'],
  registers: [registry],
});
export const ec2Throttled = new Counter({
  name: 'awscni_ec2api_throttled_count',
  help: 'The number of EC2 requests that were throttled (RequestLimitExceeded)',
  labelNames: ['fn'],
  registers: [registry],
});

// The reference's other families (utils/prometheusmetrics, pkg/version; list: test/data/reference-metrics.tsv).
export const buildInfo = new Gauge({
  name: 'awscni_build_info',
  help: "A metric with a constant '1' value labeled by version, revision, and goversion from which amazon-vpc-cni-k8s was built.",
  labelNames: ['version', 'goversion'],
  registers: [registry],
});
// The runtime in the reference's label: here Node.js, not Go.
buildInfo.set({ version: VPC_CNI_VERSION, goversion: `node${process.versions.node}` }, 1);
/** Security groups for pods (branch ENIs) are not implemented: the family exists, with no series. */
export const podEniErrors = new Counter({
  name: 'awscni_pod_eni_error_count',
  help: 'The number of errors encountered for pod ENIs',
  labelNames: ['fn'],
  registers: [registry],
});
export const awsUtilsErrors = new Counter({
  name: 'awscni_aws_utils_error_count',
  help: 'The number of errors not handled in awsutils library',
  labelNames: ['fn', 'error'],
  registers: [registry],
});
/** Go's default histogram buckets, as the reference's HistogramVecs use them. */
const GO_DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const ipamdStartupDuration = new Histogram({
  name: 'awscni_ipamd_startup_duration_seconds',
  help: 'The duration of IPAMD startup from process start to ready to serve CNI requests',
  labelNames: ['success', 'with_api_server', 'failure_reason'],
  buckets: GO_DEFAULT_BUCKETS,
  registers: [registry],
});
export const ipamdNodeInitDuration = new Histogram({
  name: 'awscni_ipamd_node_initialization_duration_seconds',
  help: 'The duration of node initialization during IPAMD startup',
  labelNames: ['success'],
  buckets: GO_DEFAULT_BUCKETS,
  registers: [registry],
});
export const connmarkBackend = new Gauge({
  name: 'awscni_connmark_backend',
  help: "The connmark backend in use; the active backend's series is set to 1",
  labelNames: ['backend'],
  registers: [registry],
});
export const connmarkReconcileCount = new Counter({
  name: 'awscni_connmark_reconcile_total',
  help: 'The number of connmark Setup/Cleanup reconciliations by result',
  labelNames: ['result'],
  registers: [registry],
});
// Both results exist from the start, as in the reference (a rate() over them is defined at once).
connmarkReconcileCount.inc({ result: 'success' }, 0);
connmarkReconcileCount.inc({ result: 'error' }, 0);

let processMetricsOn = false;
/** Adds process_* and nodejs_* metrics (RSS, CPU, event-loop lag) to the registry, once. */
export function collectProcessMetrics(): void {
  if (processMetricsOn) return;
  processMetricsOn = true;
  collectDefaultMetrics({ register: registry });
}
