/**
 * The local VPC as a library for tests and benchmarks:
 *
 *   const vpc = await createVpc();
 *   const node = await vpc.launchInstance({ instanceType: 'm5.large' });
 *   await vpc.exec(node, 'ping', ['-c1', '-W1', other.primaryIp]);
 *   await vpc.destroy();
 *
 * One in-memory EC2 model (`vpc.state`), the EC2 and IMDS emulators over it, and the namespace
 * fabric that turns the model into veths and routes. Inside an instance namespace the emulators are
 * where they are on a real instance (IMDS at 169.254.169.254, EC2 at http://169.254.169.253); from
 * the root namespace tests reach them on loopback ports (`vpc.ec2Url`, `instance.imdsLoopbackUrl`).
 *
 * EC2's asynchrony is on by default (asynchrony.ts): attaches and detaches take time, IMDS lags EC2,
 * a new ENI is NotFound for a moment. `asynchrony: 'instant'` turns it off for a test that says why;
 * `timeScale` (default LOCAL_VPC_TIME_SCALE, else 1) shortens every figure.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import { type Asynchrony, type AsynchronyOption, resolveAsynchrony, timeScaleFromEnv } from './asynchrony.js';
import { CallLog } from './ec2/call-log.js';
import { Faults } from './ec2/faults.js';
import { createEc2Handler, type Ec2Server, startEc2Server } from './ec2/server.js';
import { Ec2State } from './ec2/state.js';
import {
  EC2_ADDRESS,
  IMDS_ADDRESS,
  INET_HOST_ADDRESS,
  INET_HTTP_PORT,
  plainIpv4,
  ROUTER_HTTP_PORT,
} from './fabric/addresses.js';
import { fabricModelFromState } from './fabric/ec2-view.js';
import { Fabric } from './fabric/fabric.js';
import { startInternetEcho } from './fabric/inet-echo.js';
import {
  type ConnectionSink,
  closeServer,
  dispatchByLocalAddress,
  listenInNetns,
  listeningPort,
  listenOnLoopback,
} from './fabric/listeners.js';
import { newPrefix, validatePrefix } from './fabric/names.js';
import type { CommandResult } from './fabric/shell.js';
import { createImds, type Imds } from './imds/server.js';

export type { Asynchrony, AsynchronyOption } from './asynchrony.js';
export { EC2_ADDRESS, IMDS_ADDRESS, INET_HOST_ADDRESS } from './fabric/addresses.js';
export { cleanupPrefix } from './fabric/cleanup.js';

export interface SubnetSpec {
  cidr: string;
  /** Availability zone, e.g. us-west-2b; default the region's "a" zone. */
  az?: string;
}

export interface CreateVpcOptions {
  /** Namespace prefix `vpccni-<runid>`; a fresh one by default. */
  prefix?: string;
  /** VPC CIDR; default 10.0.0.0/16. */
  cidr?: string;
  /** Subnets; default 10.0.1.0/24 and 10.0.2.0/24, both in the "a" zone (so ENIs may cross them). */
  subnets?: Array<string | SubnetSpec>;
  /**
   * EC2's asynchrony: 'realistic' (default: attach, detach, IMDS lag and the consistency window as
   * asynchrony.ts documents them), 'instant', or realistic with some figures replaced.
   */
  asynchrony?: AsynchronyOption;
  /** Multiplies every asynchrony figure; default LOCAL_VPC_TIME_SCALE, else 1. */
  timeScale?: number;
  /** How far IMDS lags EC2, in ms (overrides the asynchrony's imdsLagMs, unscaled). */
  imdsLagMs?: number;
  /** How long after an attach completes the ENI's link appears in the instance, in ms (default 0). */
  eniAttachDelayMs?: number;
  region?: string;
}

export interface LaunchOptions {
  instanceType: string;
  /** Subnet id, or index into `vpc.subnetIds`; default the first subnet. */
  subnet?: string | number;
  /** Primary private address; EC2 picks one by default. */
  privateIp?: string;
  tags?: Record<string, string>;
  /** HttpPutResponseHopLimit (1-64); EC2's default 1 lets only the instance itself get IMDS tokens. */
  imdsHopLimit?: number;
}

export interface Instance {
  id: string;
  instanceType: string;
  /** Network namespace name: `ip netns exec <netns> ...`. */
  netns: string;
  primaryIp: string;
  primaryMac: string;
  primaryEniId: string;
  subnetId: string;
  vpcId: string;
  /** EC2 API endpoint as seen from inside the instance (for AWS_EC2_ENDPOINT). */
  ec2Endpoint: string;
  /** IMDS as seen from inside the instance. */
  imdsEndpoint: string;
  /** IMDS answering as this instance, reachable from the root namespace. */
  imdsLoopbackUrl: string;
  /**
   * Environment for AWS clients run inside the instance: region, the EC2 endpoint (ipamd's
   * AWS_EC2_ENDPOINT and the SDK's AWS_ENDPOINT_URL_EC2) and static dummy credentials whose key id
   * names the instance in the EC2 call log (the emulated IMDS serves no role credentials).
   */
  awsEnv: Record<string, string>;
}

export interface ExecOptions {
  input?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this many ms (default 30 s). */
  timeoutMs?: number;
}

/** Where a command runs: an instance or any namespace of this VPC by name. */
export type Target = Instance | string;

export interface LocalVpc {
  readonly prefix: string;
  readonly state: Ec2State;
  readonly vpcId: string;
  readonly subnetIds: readonly string[];
  readonly routerNetns: string;
  readonly inetNetns: string;
  /** The internet host's address (198.51.100.10); it accepts only instances' primary addresses. */
  readonly inetAddress: string;
  /** The internet host's echo server: answers `{"sourceAddress": ...}` as it saw the request. */
  readonly inetUrl: string;
  /** EC2 endpoint on loopback in the root namespace, for the SDK in tests. */
  readonly ec2Url: string;
  /** EC2 endpoint as instances see it (http://169.254.169.253). */
  readonly ec2Endpoint: string;
  readonly faults: Faults;
  readonly callLog: CallLog;
  /** The asynchrony figures in force (already scaled). */
  readonly asynchrony: Readonly<Asynchrony>;
  /** IMDS controls: how far it lags EC2, whether IMDSv1 (no token) is answered. */
  readonly imds: Pick<Imds, 'setLagMs' | 'setAllowV1'>;

  launchInstance(opts: LaunchOptions): Promise<Instance>;
  terminateInstance(instance: Instance | string): Promise<void>;
  instances(): Instance[];
  /** Spawns `cmd` inside the target namespace; the VPC kills it on destroy. */
  runIn(target: Target, cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Runs `cmd` inside the target namespace to completion. */
  exec(target: Target, cmd: string, args?: readonly string[], opts?: ExecOptions): Promise<CommandResult>;
  /** One ICMP echo from the target (optionally from a given source address); true when answered. */
  ping(target: Target, address: string, opts?: { source?: string; timeoutS?: number }): Promise<boolean>;
  /** Resolves once the kernel reflects every EC2 change made so far (veths, routes). */
  settled(): Promise<void>;
  /** The router-side veth of an attached ENI (to check where the router delivers an address). */
  routerLinkOf(eniId: string): string | undefined;
  /** Stops everything and removes every namespace. Idempotent. */
  destroy(): Promise<void>;
}

/** The access key id an instance's AWS clients use: the call log's caller names the instance. */
export function callerKeyId(instanceId: string): string {
  return `AKID${instanceId.replace('i-', '').toUpperCase()}`;
}

const DEFAULT_SUBNETS: SubnetSpec[] = [{ cidr: '10.0.1.0/24' }, { cidr: '10.0.2.0/24' }];

export async function createVpc(opts: CreateVpcOptions = {}): Promise<LocalVpc> {
  const prefix = validatePrefix(opts.prefix ?? newPrefix());
  const asynchrony = resolveAsynchrony(opts.asynchrony, opts.timeScale ?? timeScaleFromEnv());
  if (opts.imdsLagMs !== undefined) {
    if (!Number.isFinite(opts.imdsLagMs) || opts.imdsLagMs < 0) {
      throw new Error(`createVpc: imdsLagMs must be a number >= 0, got ${opts.imdsLagMs}`);
    }
    asynchrony.imdsLagMs = opts.imdsLagMs;
  }
  const state = new Ec2State(opts.region ? { region: opts.region } : {});
  state.setAttachDelay(asynchrony.attachMs);
  state.setDetachDelay(asynchrony.detachMs);
  const vpcRecord = state.createVpc({ cidr: opts.cidr ?? '10.0.0.0/16' });
  const subnets = opts.subnets ?? DEFAULT_SUBNETS;
  if (!Array.isArray(subnets) || subnets.length === 0) {
    throw new Error('createVpc: subnets must list at least one subnet CIDR (e.g. ["10.0.1.0/24"])');
  }
  const subnetIds = subnets.map((s) => {
    const spec = typeof s === 'string' ? { cidr: s } : s;
    return state.createSubnet({ vpcId: vpcRecord.id, cidr: spec.cidr, ...(spec.az ? { az: spec.az } : {}) })
      .id;
  });
  return LocalVpcImpl.start(prefix, state, vpcRecord.id, subnetIds, asynchrony, opts.eniAttachDelayMs ?? 0);
}

class LocalVpcImpl implements LocalVpc {
  readonly routerNetns: string;
  readonly inetNetns: string;
  readonly inetAddress = INET_HOST_ADDRESS;
  readonly inetUrl = `http://${INET_HOST_ADDRESS}:${INET_HTTP_PORT}/`;
  readonly ec2Endpoint = `http://${EC2_ADDRESS}`;
  ec2Url = '';

  readonly faults = new Faults();
  readonly callLog = new CallLog();
  private ec2: Ec2Server | undefined;
  private imdsControl!: Imds;
  /** IMDS: one server fed by the router listener and each instance's loopback listener. */
  private imdsServer!: http.Server;
  private readonly listeners: net.Server[] = [];
  /** root-namespace IMDS port -> instance id */
  private readonly imdsPorts = new Map<number, string>();
  private readonly launched = new Map<string, Instance>();
  private readonly children = new Set<ChildProcess>();
  private destroying: Promise<void> | undefined;

  private constructor(
    readonly prefix: string,
    readonly state: Ec2State,
    readonly vpcId: string,
    readonly subnetIds: readonly string[],
    private readonly fabric: Fabric,
    readonly asynchrony: Readonly<Asynchrony>,
  ) {
    this.faults.setConsistencyWindow(asynchrony.consistencyWindowMs, { baseline: true });
    this.routerNetns = fabric.routerNs;
    this.inetNetns = fabric.inetNs;
  }

  static async start(
    prefix: string,
    state: Ec2State,
    vpcId: string,
    subnetIds: string[],
    asynchrony: Asynchrony,
    eniAttachDelayMs: number,
  ): Promise<LocalVpcImpl> {
    const fabric = await Fabric.create({
      prefix,
      eniAttachDelayMs,
      model: fabricModelFromState(state),
      // Also printed as it happens: a test that never calls settled() still shows why packets vanish.
      onError: (err) => process.stderr.write(`local VPC ${prefix}: ${err.message}\n`),
    });
    const vpc = new LocalVpcImpl(prefix, state, vpcId, subnetIds, fabric, Object.freeze({ ...asynchrony }));
    try {
      await vpc.startServices(asynchrony.imdsLagMs);
    } catch (err) {
      await vpc.destroy().catch(() => {});
      throw err;
    }
    return vpc;
  }

  get imds(): Pick<Imds, 'setLagMs' | 'setAllowV1'> {
    return this.imdsControl;
  }

  private async startServices(imdsLagMs: number): Promise<void> {
    // One model, one set of faults, one call log, whichever way a request comes in.
    const ec2Controls = { state: this.state, faults: this.faults, calls: this.callLog };
    this.ec2 = await startEc2Server({ ...ec2Controls, port: 0, host: '127.0.0.1' });
    this.ec2Url = this.ec2.url;
    const routerEc2 = http.createServer(createEc2Handler(ec2Controls));
    this.imdsControl = createImds({
      state: this.state,
      lagMs: imdsLagMs,
      resolveInstance: (remoteAddress, req) => this.imdsCaller(remoteAddress, req),
    });
    this.imdsServer = http.createServer(this.imdsControl.handler);
    // The router namespace: both emulators on port 80, told apart by the address dialled.
    const sinks = new Map<string, ConnectionSink>([
      [IMDS_ADDRESS, this.imdsServer],
      [EC2_ADDRESS, routerEc2],
    ]);
    this.listeners.push(
      await listenInNetns(this.routerNetns, ROUTER_HTTP_PORT, dispatchByLocalAddress(sinks)),
    );
    this.listeners.push(await startInternetEcho(this.inetNetns, INET_HTTP_PORT));
  }

  /**
   * Which instance is asking IMDS. Inside the VPC: the owner of the source address (the router's
   * source/destination check guarantees it arrived on that owner's ENI). On loopback: the
   * instance whose loopback port was dialled.
   */
  private imdsCaller(remoteAddress: string | undefined, req: http.IncomingMessage): string | undefined {
    const remote = plainIpv4(remoteAddress);
    if (remote === '127.0.0.1') return this.imdsPorts.get(req.socket.localPort ?? -1);
    return remote ? this.state.instanceByAddress(remote)?.id : undefined;
  }

  async launchInstance(opts: LaunchOptions): Promise<Instance> {
    this.assertAlive();
    const subnetId = this.resolveSubnet(opts.subnet);
    const record = this.state.runInstance({
      instanceType: opts.instanceType,
      subnetId,
      ...(opts.privateIp ? { privateIpAddress: opts.privateIp } : {}),
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.imdsHopLimit !== undefined ? { httpPutResponseHopLimit: opts.imdsHopLimit } : {}),
    });
    const netns = await this.fabric.addInstance(record.id);
    const imdsListener = await listenOnLoopback((socket) => this.imdsServer.emit('connection', socket));
    this.listeners.push(imdsListener);
    const imdsPort = listeningPort(imdsListener);
    this.imdsPorts.set(imdsPort, record.id);
    const eni = this.state.getEni(record.primaryEniId)!;
    const instance: Instance = {
      id: record.id,
      instanceType: record.instanceType,
      netns,
      primaryIp: record.privateIpAddress,
      primaryMac: eni.mac,
      primaryEniId: eni.id,
      subnetId: record.subnetId,
      vpcId: record.vpcId,
      ec2Endpoint: this.ec2Endpoint,
      imdsEndpoint: `http://${IMDS_ADDRESS}`,
      imdsLoopbackUrl: `http://127.0.0.1:${imdsPort}`,
      awsEnv: {
        AWS_REGION: this.state.region,
        AWS_DEFAULT_REGION: this.state.region,
        AWS_EC2_ENDPOINT: this.ec2Endpoint,
        AWS_ENDPOINT_URL_EC2: this.ec2Endpoint,
        AWS_ACCESS_KEY_ID: callerKeyId(record.id),
        AWS_SECRET_ACCESS_KEY: 'local-vpc-not-checked',
      },
    };
    this.launched.set(instance.id, instance);
    return instance;
  }

  async terminateInstance(instance: Instance | string): Promise<void> {
    const id = typeof instance === 'string' ? instance : instance.id;
    this.state.terminateInstance(id);
    this.launched.delete(id);
    await this.fabric.idle();
  }

  instances(): Instance[] {
    return [...this.launched.values()];
  }

  runIn(target: Target, cmd: string, args: readonly string[] = [], opts: SpawnOptions = {}): ChildProcess {
    this.assertAlive();
    const child = spawn('ip', ['netns', 'exec', this.netnsOf(target), cmd, ...args], opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  exec(
    target: Target,
    cmd: string,
    args: readonly string[] = [],
    opts: ExecOptions = {},
  ): Promise<CommandResult> {
    const child = this.runIn(target, cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.env ? { env: opts.env } : {}),
    });
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${cmd} in ${this.netnsOf(target)}: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) });
      });
      child.stdin?.on('error', () => {});
      child.stdin?.end(opts.input ?? '');
    });
  }

  async ping(
    target: Target,
    address: string,
    opts: { source?: string; timeoutS?: number } = {},
  ): Promise<boolean> {
    const args = ['-n', '-c1', `-W${opts.timeoutS ?? 1}`];
    if (opts.source) args.push('-I', opts.source);
    const r = await this.exec(target, 'ping', [...args, address]);
    return r.code === 0;
  }

  settled(): Promise<void> {
    return this.fabric.idle();
  }

  routerLinkOf(eniId: string): string | undefined {
    return this.fabric.routerLinkOf(eniId);
  }

  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const errors: string[] = [];
    this.state.dispose(); // pending attaches/detaches must not reach a fabric being taken down
    const exited = [...this.children].map(
      (child) =>
        new Promise<void>((resolve) =>
          child.exitCode !== null ? resolve() : child.once('exit', () => resolve()),
        ),
    );
    for (const child of this.children) child.kill('SIGKILL');
    await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 2000))]);
    for (const l of this.listeners) await closeServer(l).catch((e: Error) => errors.push(e.message));
    this.imdsControl?.stop();
    if (this.ec2) await this.ec2.close().catch((e: Error) => errors.push(e.message));
    await this.fabric.destroy().catch((e: Error) => errors.push(e.message));
    if (errors.length > 0) throw new Error(`local VPC ${this.prefix} teardown: ${errors.join('; ')}`);
  }

  private assertAlive(): void {
    if (this.destroying) throw new Error(`local VPC ${this.prefix} has been destroyed`);
  }

  private resolveSubnet(subnet: string | number | undefined): string {
    if (subnet === undefined) return this.subnetIds[0]!;
    if (typeof subnet === 'number') {
      const id = this.subnetIds[subnet];
      if (!id)
        throw new Error(
          `launchInstance: no subnet at index ${subnet} (this VPC has ${this.subnetIds.length})`,
        );
      return id;
    }
    return subnet;
  }

  private netnsOf(target: Target): string {
    if (typeof target !== 'string') return target.netns;
    const ns = target;
    if (ns !== this.prefix && !ns.startsWith(`${this.prefix}-`)) {
      throw new Error(`namespace ${ns} does not belong to local VPC ${this.prefix}`);
    }
    return ns;
  }
}
