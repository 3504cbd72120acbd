/**
 * The main job, start to finish: a local VPC, N instances each running the real ipamd, pods started
 * through the real CNI plugin the way a runtime calls it, connectivity checked with real packets,
 * then a report (placement, ENIs, checks, EC2 calls) and a clean teardown. Exit code 0 only when
 * every pod started and every check passed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INET_HTTP_PORT } from '../fabric/addresses.js';
import { cleanupPrefix, netnsWithPrefix } from '../fabric/cleanup.js';
import { type Check, planChecks, runCheck } from './checks.js';
import { type Bundles, Cluster } from './cluster.js';
import type { DemoOptions } from './options.js';
import { latencySummary, mapLimit, newPod, type Pod, startPod, stopPod } from './pods.js';
import { Progress } from './progress.js';
import {
  type CheckRow,
  checkTable,
  type EniRow,
  ec2CallsTable,
  ec2ErrorLines,
  eniTable,
  type PlacementRow,
  placementTable,
} from './report.js';

export interface DemoIo {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  /** Rewrite the status line in place (a terminal, or a parent relaying to one). */
  tty: boolean;
}

export interface Outcome {
  prefix: string;
  workDir: string;
  podsStarted: number;
  podsFailed: number;
  checksPassed: number;
  checksFailed: number;
  pods: Array<{ name: string; netns: string; address: string; node: string }>;
}

/** What the caller does between the report and the teardown (`--keep`: hold until told to stop). */
export type Hold = (outcome: Outcome, exitCode: number) => Promise<void>;

export class Demo {
  private cluster: Cluster | undefined;
  private pods: Pod[] = [];
  private readonly progress: Progress;
  private tearingDown: Promise<void> | undefined;
  private failed = false;
  private workDir: string | undefined;
  /** Set once teardown starts: no new pod is started after it. */
  private stopping = false;
  private silent = false;

  constructor(
    private readonly opts: DemoOptions,
    private readonly bundles: Bundles,
    io: DemoIo,
  ) {
    this.progress = new Progress(io.out, io.tty);
  }

  async run(hold?: Hold): Promise<number> {
    const workDir = mkdtempSync(join(tmpdir(), 'vpccni-demo-'));
    this.workDir = workDir;
    const t0 = Date.now();
    try {
      const { opts } = this;
      this.say(`Creating a local VPC with ${opts.instances} x ${opts.instanceType} and ${opts.pods} pods`);
      const cluster = await Cluster.create(workDir, this.bundles);
      this.cluster = cluster;
      const { vpc } = cluster;
      this.say(
        `  VPC ${vpc.vpcId} (${vpc.prefix}); subnets ${vpc.subnetIds.map((id) => `${id} ${vpc.state.getSubnet(id)!.cidrBlock}`).join(', ')}`,
      );
      await cluster.launch(opts.instances, opts.instanceType);
      for (const n of cluster.nodes) {
        this.say(
          `  ${n.label}: ${n.instance.id} ${n.instance.primaryIp} (${n.nodeName}), ip netns exec ${n.instance.netns} ...`,
        );
      }

      this.say(`  work directory ${workDir} (per node: ipamd socket, log, checkpoint, CNI config)`);
      this.say('Starting ipamd on every node (it fills the warm pool, attaching ENIs as it goes)');
      cluster.startIpamd();
      await cluster.waitReady(90_000, () => this.progress.update(`ipamd warming up | ${this.poolStatus()}`));
      this.progress.clear();
      this.say(
        `  ipamd ready (pids ${cluster.nodes.map((n) => n.ipamd?.pid).join(', ')}): ${this.poolStatus()}`,
      );

      this.say(
        `Starting ${opts.pods} pods through the CNI chain (aws-cni, portmap), ${opts.concurrency} at a time per node`,
      );
      const failures = await this.startPods();
      if (this.stopping) return 1;
      this.progress.clear();
      const started = this.pods.filter((p) => p.address !== '');
      this.say(`  ${started.length}/${this.pods.length} pods running: ${this.poolStatus()}`);
      const retried = started.filter((p) => p.attempts > 1).length;
      this.say(
        `  CNI ADD through the chain: ${latencySummary(started.map((p) => p.addMs ?? 0))}${retried ? `; ${retried} pods retried after "try again later"` : ''}`,
      );
      for (const f of failures) this.say(`  FAILED ${f}`);

      await vpc.settled();
      this.say(`Checking connectivity from every pod (same node, across nodes, internet via SNAT)`);
      const checks = await this.runChecks(started);
      if (this.stopping) return 1;
      this.progress.clear();

      this.report(checks);
      const failedChecks = checks.filter((c) => !c.ok).length;
      const ok = failures.length === 0 && failedChecks === 0 && started.length > 0;
      this.say(
        `\n${ok ? 'PASS' : 'FAIL'}: ${started.length}/${this.pods.length} pods started, ${checks.length - failedChecks}/${checks.length} connectivity checks passed, ${vpc.callLog.count()} EC2 calls, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      const exitCode = ok ? 0 : 1;
      this.failed = !ok;
      if (hold) {
        await hold(
          {
            prefix: vpc.prefix,
            workDir,
            podsStarted: started.length,
            podsFailed: failures.length,
            checksPassed: checks.length - failedChecks,
            checksFailed: failedChecks,
            pods: started.map((p) => ({
              name: p.podName,
              netns: p.netns,
              address: p.address,
              node: p.node.label,
            })),
          },
          exitCode,
        );
      }
      return exitCode;
    } catch (err) {
      // After an interrupt, errors from the half-torn-down VPC are expected noise.
      if (this.stopping) return 1;
      this.progress.clear();
      this.say(`FAIL: ${(err as Error).message}`);
      this.failed = true;
      return 1;
    } finally {
      await this.teardown();
    }
  }

  /** DEL every pod, stop every ipamd, destroy the VPC, and make sure no namespace of it is left. Idempotent. */
  teardown(): Promise<void> {
    this.tearingDown ??= this.doTeardown();
    return this.tearingDown;
  }

  private async doTeardown(): Promise<void> {
    const cluster = this.cluster;
    if (!cluster) {
      if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
      return;
    }
    this.stopping = true;
    // Decided now: an interrupted run goes on failing in the background while we tear down.
    const keepLogs = this.failed;
    this.progress.clear();
    this.say('Cleaning up: DEL every pod, stop ipamd, remove the VPC');
    const t0 = Date.now();
    const problems = (await mapLimit(this.pods, this.opts.concurrency * 2, (p) => stopPod(p))).filter(
      (p): p is string => p !== undefined,
    );
    const tPods = Date.now();
    await cluster.stopIpamd();
    const tIpamd = Date.now();
    await cluster.vpc.destroy().catch((err: Error) => problems.push(err.message));
    const tVpc = Date.now();
    // Whatever the VPC did not know about (a pod namespace made during an interrupt) goes by prefix.
    const leftovers = await cleanupPrefix(cluster.vpc.prefix).catch((err: Error) => {
      problems.push(err.message);
      return { namespaces: [] as string[] };
    });
    if (leftovers.namespaces.length > 0)
      problems.push(`removed leftover namespaces ${leftovers.namespaces.join(', ')}`);
    for (const p of problems) this.say(`  cleanup: ${p}`);
    const left = await netnsWithPrefix(cluster.vpc.prefix).catch(() => ['(cannot list namespaces)']);
    this.say(
      `  done: ${this.pods.filter((p) => p.attempts > 0).length} pods deleted, ${cluster.nodes.length} ipamd stopped, ${
        left.length === 0 ? `no namespace of ${cluster.vpc.prefix} left` : `STILL PRESENT: ${left.join(', ')}`
      } (pods ${secs(tPods - t0)}, ipamd ${secs(tIpamd - tPods)}, VPC ${secs(tVpc - tIpamd)})`,
    );
    // On failure the ipamd logs and checkpoints are the evidence: keep them.
    if (keepLogs) this.say(`ipamd logs kept in ${this.workDir}/node-*/ipamd.log`);
    else if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
  }

  private say(text: string): void {
    if (!this.silent) this.progress.log(text);
  }

  /** Stops all output (the reader of stdout went away); the run and its teardown go on. */
  silence(): void {
    this.silent = true;
    this.progress.silence();
  }

  /** "node-1 eth0+eth1 18 IPs | node-2 ... | 14 EC2 calls", from the EC2 model as it is now. */
  private poolStatus(): string {
    const cluster = this.cluster!;
    const nodes = cluster.nodes.map((n) => {
      const enis = cluster.vpc.state.enisOfInstance(n.instance.id);
      const devices = enis.map((e) => `eth${e.attachment!.deviceIndex}`).join('+');
      const ips = enis.reduce(
        (sum, e) => sum + e.privateIps.filter((ip) => !ip.primary).length + e.prefixes.length * 16,
        0,
      );
      return `${n.label} ${devices} ${ips} IPs`;
    });
    return `${nodes.join(' | ')} | ${cluster.vpc.callLog.count()} EC2 calls`;
  }

  /** Pods round-robin over the nodes; each node takes `concurrency` ADDs at a time. */
  private async startPods(): Promise<string[]> {
    const cluster = this.cluster!;
    this.pods = Array.from({ length: this.opts.pods }, (_, i) =>
      newPod(cluster.vpc.prefix, i + 1, cluster.nodes[i % cluster.nodes.length]!),
    );
    const failures: string[] = [];
    let done = 0;
    const tick = () => this.progress.update(`pods ${done}/${this.pods.length} | ${this.poolStatus()}`);
    const timer = setInterval(tick, 250);
    try {
      await Promise.all(
        cluster.nodes.map((node) =>
          mapLimit(
            this.pods.filter((p) => p.node === node),
            this.opts.concurrency,
            async (pod) => {
              if (this.stopping) return;
              try {
                await startPod(pod);
              } catch (err) {
                failures.push((err as Error).message);
              }
              done++;
              tick();
            },
          ),
        ),
      );
    } finally {
      clearInterval(timer);
    }
    return failures;
  }

  private async runChecks(pods: Pod[]): Promise<Check[]> {
    const cluster = this.cluster!;
    const plan = planChecks(pods, (p) => this.deviceOf(p), cluster.vpc.inetAddress);
    let done = 0;
    let failed = 0;
    return mapLimit(plan, 8, async (c) => {
      const r = await runCheck(c, INET_HTTP_PORT);
      done++;
      if (!r.ok) failed++;
      this.progress.update(`checks ${done}/${plan.length}${failed ? `, ${failed} failed` : ''}`);
      return r;
    });
  }

  private deviceOf(pod: Pod): number | undefined {
    return this.cluster!.vpc.state.findEniByAddress(pod.address)?.attachment?.deviceIndex;
  }

  private report(checks: Check[]): void {
    const cluster = this.cluster!;
    const { state } = cluster.vpc;
    const started = this.pods.filter((p) => p.address !== '');
    const placement: PlacementRow[] = started.map((p) => {
      const eni = state.findEniByAddress(p.address);
      return {
        instance: p.node.instance.id,
        eni: eni?.id ?? '?',
        device: eni?.attachment?.deviceIndex ?? -1,
        address: p.address,
        pod: `${p.podNamespace}/${p.podName}`,
        node: p.node.nodeName,
      };
    });
    this.say(`\nPods (${started.length}):`);
    this.say(placementTable(placement));

    const enis: EniRow[] = cluster.nodes.flatMap((n) =>
      state.enisOfInstance(n.instance.id).map((e) => {
        const secondary = e.privateIps.filter((ip) => !ip.primary).length + e.prefixes.length * 16;
        return {
          instance: n.instance.id,
          eni: e.id,
          device: e.attachment!.deviceIndex,
          subnet: state.getSubnet(e.subnetId)?.cidrBlock ?? e.subnetId,
          primaryIp: e.privateIps.find((ip) => ip.primary)?.address ?? '?',
          secondary,
          used: placement.filter((r) => r.eni === e.id).length,
        };
      }),
    );
    this.say(`\nENIs (${enis.length}):`);
    this.say(eniTable(enis));

    const rows: CheckRow[] = started.map((p) => {
      const row: CheckRow = {
        pod: p.podName,
        address: p.address,
        node: p.node.label,
        device: this.deviceOf(p),
        results: {},
      };
      for (const c of checks.filter((c) => c.pod === p)) {
        row.results[c.kind] = {
          ok: c.ok,
          text: c.kind === 'internet' ? c.detail : `${c.targetLabel}${c.ok ? '' : ` (${c.detail})`}`,
        };
      }
      return row;
    });
    this.say(
      `\nConnectivity (${checks.length} checks, ping from inside each pod; internet = what the host saw):`,
    );
    this.say(checkTable(rows));

    const callers = new Map(cluster.nodes.map((n) => [`AKID${n.instance.id}`, n.label]));
    this.say(`\nEC2 calls (${cluster.vpc.callLog.count()}):`);
    this.say(ec2CallsTable(cluster.vpc.callLog.summary(), callers));
    const errors = ec2ErrorLines(cluster.vpc.callLog.entries());
    if (errors.length > 0) this.say(`EC2 errors: ${errors.join(', ')}`);
  }
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
