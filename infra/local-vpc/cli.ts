/**
 * `local-vpc`: bring a local VPC up in the background, look at it, take it down.
 *
 *   local-vpc up [--instances 2] [--instance-type m5.large] [--name default]
 *   local-vpc status [--name default] [--json]
 *   local-vpc down [--name default]
 *   local-vpc cleanup --prefix vpccni-<runid>
 *
 * `up` starts a detached copy of this program (`serve`) that holds the emulators and the fabric,
 * and returns once it has written `<state dir>/<name>/vpc.json`. `down` stops that process and
 * removes every namespace of its prefix, also when the process had already died.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { lookupInstanceType } from '../../lib/instance-types/index.js';
import {
  isAlive,
  listRecords,
  readRecord,
  recordDir,
  recordPath,
  stateDir,
  type VpcRecord,
  validateName,
  writeRecord,
} from './cli-record.js';
import { netnsWithPrefix } from './fabric/cleanup.js';
import { validatePrefix } from './fabric/names.js';
import { cleanupPrefix, createVpc } from './index.js';

const program = new Command('local-vpc').description(
  'A local emulated AWS VPC (EC2 + IMDS emulators in a fabric of network namespaces)',
);

function countOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > MAX_INSTANCES) {
    throw new InvalidArgumentError(`expected a whole number from 0 to ${MAX_INSTANCES}`);
  }
  return n;
}

const MAX_INSTANCES = 32;

function nameOption(value: string): string {
  try {
    return validateName(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

/** The options `up` takes and hands on to the background `serve` it starts. */
function withVpcOptions(cmd: Command): Command {
  return cmd
    .option('--instances <n>', 'number of instances', countOption, 2)
    .option('--instance-type <type>', 'EC2 instance type', 'm5.large')
    .option('--name <name>', 'name of this VPC (several can run side by side)', nameOption, 'default')
    .option(
      '--asynchrony <mode>',
      'realistic (attach/detach delays, IMDS lag, consistency window; see docs/local-vpc.md) or instant',
      'realistic',
    )
    .option('--imds-lag-ms <ms>', "how far IMDS lags EC2 (default: the asynchrony mode's figure)")
    .option('--eni-attach-delay-ms <ms>', 'how long an attached ENI takes to appear in the instance', '0')
    .option('--state-dir <dir>', 'where running VPCs are recorded', stateDir());
}

withVpcOptions(
  program
    .command('up')
    .description('start a VPC with N instances in the background and print how to reach it'),
).action(async (opts: UpOptions) => {
  const record = await up(opts);
  process.stdout.write(describe(record));
});

program
  .command('status')
  .description('show a running VPC')
  .option('--name <name>', 'name of the VPC', nameOption, 'default')
  .option('--json', 'print the record as JSON')
  .option('--state-dir <dir>', 'where running VPCs are recorded', stateDir())
  .action(async (opts: { name: string; json?: boolean; stateDir: string }) => {
    const record = readRecord(opts.stateDir, opts.name);
    if (!record) {
      process.stderr.write(
        `local-vpc: no VPC named "${opts.name}" is up (local-vpc up --name ${opts.name})\n`,
      );
      process.exitCode = 1;
      return;
    }
    const alive = isAlive(record.pid);
    const namespaces = await netnsWithPrefix(record.prefix);
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ ...record, alive, namespaces }, null, 2)}\n`);
    } else {
      process.stdout.write(describe(record));
      process.stdout.write(
        `\nprocess ${record.pid}: ${alive ? 'running' : 'NOT RUNNING (local-vpc down cleans up)'}\n`,
      );
      process.stdout.write(`namespaces present: ${namespaces.length}\n`);
    }
    if (!alive) process.exitCode = 1;
  });

program
  .command('down')
  .description('stop a VPC and remove all its namespaces')
  .option('--name <name>', 'name of the VPC', nameOption, 'default')
  .option('--state-dir <dir>', 'where running VPCs are recorded', stateDir())
  .action(async (opts: { name: string; stateDir: string }) => {
    const record = readRecord(opts.stateDir, opts.name);
    if (!record) {
      process.stderr.write(`local-vpc: no VPC named "${opts.name}" is recorded in ${opts.stateDir}\n`);
      process.exitCode = 1;
      return;
    }
    await stopServer(record.pid);
    const report = await cleanupPrefix(record.prefix);
    rmSync(recordDir(opts.stateDir, opts.name), { recursive: true, force: true });
    process.stdout.write(
      `local-vpc "${opts.name}" is down (${record.prefix}; removed ${report.namespaces.length} leftover namespaces)\n`,
    );
  });

program
  .command('cleanup')
  .description('remove every namespace (and the processes in them) of a prefix, e.g. after a crash')
  .requiredOption('--prefix <prefix>', 'namespace prefix, vpccni-<runid>')
  .option('--state-dir <dir>', 'where running VPCs are recorded', stateDir())
  .action(async (opts: { prefix: string; stateDir: string }) => {
    const prefix = validatePrefix(opts.prefix);
    // A VPC process still holding this prefix would keep serving into deleted namespaces.
    for (const record of listRecords(opts.stateDir)) {
      if (record.prefix === prefix) await stopServer(record.pid);
    }
    const report = await cleanupPrefix(prefix);
    process.stdout.write(
      `removed ${report.namespaces.length} namespaces, killed ${report.processesKilled} processes\n`,
    );
  });

withVpcOptions(
  program
    .command('serve', { hidden: true })
    .description('run a VPC in the foreground (what `up` starts in the background)'),
).action(async (opts: UpOptions) => {
  await serve(opts);
});

interface UpOptions {
  instances: number;
  instanceType: string;
  name: string;
  asynchrony: string;
  imdsLagMs?: string;
  eniAttachDelayMs: string;
  stateDir: string;
}

function asynchronyMode(text: string): 'realistic' | 'instant' {
  if (text !== 'realistic' && text !== 'instant')
    throw new Error(`--asynchrony: expected realistic or instant, got "${text}"`);
  return text;
}

function millis(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 600_000) throw new Error(`${flag}: expected 0..600000 ms, got "${text}"`);
  return n;
}

async function up(opts: UpOptions): Promise<VpcRecord> {
  asynchronyMode(opts.asynchrony);
  if (opts.imdsLagMs !== undefined) millis('--imds-lag-ms', opts.imdsLagMs);
  millis('--eni-attach-delay-ms', opts.eniAttachDelayMs);
  if (!lookupInstanceType(opts.instanceType)) {
    throw new Error(`unknown instance type "${opts.instanceType}" (e.g. m5.large, t3.medium, c5.4xlarge)`);
  }
  const existing = readRecord(opts.stateDir, opts.name);
  if (existing && isAlive(existing.pid)) {
    throw new Error(
      `a VPC named "${opts.name}" is already up (pid ${existing.pid}); local-vpc down --name ${opts.name}`,
    );
  }
  if (existing) await cleanupPrefix(existing.prefix); // a crashed run's leftovers
  const dir = recordDir(opts.stateDir, opts.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const logFile = `${dir}/serve.log`;
  const log = openSync(logFile, 'a');
  const script = process.argv[1];
  if (!script) throw new Error('cannot tell which script to run in the background');
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      script,
      'serve',
      '--instances',
      String(opts.instances),
      '--instance-type',
      opts.instanceType,
      '--name',
      opts.name,
      '--asynchrony',
      opts.asynchrony,
      ...(opts.imdsLagMs !== undefined ? ['--imds-lag-ms', opts.imdsLagMs] : []),
      '--eni-attach-delay-ms',
      opts.eniAttachDelayMs,
      '--state-dir',
      opts.stateDir,
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  let exitCode: number | null = null;
  child.once('exit', (code) => {
    exitCode = code ?? 1;
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const record = readRecord(opts.stateDir, opts.name);
    if (record && record.pid === child.pid) return record;
    if (exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (exitCode === null && child.pid) process.kill(child.pid, 'SIGTERM');
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
  throw new Error(`the VPC did not come up (log ${logFile}):\n${tail}`);
}

async function serve(opts: UpOptions): Promise<void> {
  const vpc = await createVpc({
    asynchrony: asynchronyMode(opts.asynchrony),
    ...(opts.imdsLagMs !== undefined ? { imdsLagMs: millis('--imds-lag-ms', opts.imdsLagMs) } : {}),
    eniAttachDelayMs: millis('--eni-attach-delay-ms', opts.eniAttachDelayMs),
  });
  let stopping = false;
  const stop = async (why: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`local-vpc serve: ${why}, stopping\n`);
    try {
      await vpc.destroy();
    } finally {
      const path = recordPath(opts.stateDir, opts.name);
      const record = readRecord(opts.stateDir, opts.name);
      if (record?.pid === process.pid) rmSync(path, { force: true });
      process.exit(exitCode);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    for (let i = 0; i < opts.instances; i++) {
      await vpc.launchInstance({ instanceType: opts.instanceType, subnet: i % vpc.subnetIds.length });
    }
  } catch (err) {
    process.stderr.write(`local-vpc serve: ${(err as Error).message}\n`);
    await stop('launch failed', 1);
    return;
  }
  const record: VpcRecord = {
    name: opts.name,
    pid: process.pid,
    prefix: vpc.prefix,
    startedAt: new Date().toISOString(),
    vpcId: vpc.vpcId,
    subnets: vpc.subnetIds.map((id) => ({ id, cidr: vpc.state.getSubnet(id)!.cidrBlock })),
    routerNetns: vpc.routerNetns,
    inetNetns: vpc.inetNetns,
    inetAddress: vpc.inetAddress,
    ec2Url: vpc.ec2Url,
    ec2Endpoint: vpc.ec2Endpoint,
    instances: vpc.instances().map((i) => ({
      id: i.id,
      instanceType: i.instanceType,
      netns: i.netns,
      primaryIp: i.primaryIp,
      primaryMac: i.primaryMac,
      subnetId: i.subnetId,
      imdsLoopbackUrl: i.imdsLoopbackUrl,
    })),
  };
  writeRecord(opts.stateDir, record);
  process.stdout.write(`local-vpc serve: up\n${describe(record)}`);
}

/** SIGTERM, then SIGKILL if it has not exited within 10 s. */
async function stopServer(pid: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function describe(r: VpcRecord): string {
  const lines = [
    `local-vpc "${r.name}" (${r.prefix}), pid ${r.pid}, ${r.vpcId}`,
    `  subnets:    ${r.subnets.map((s) => `${s.id} ${s.cidr}`).join(', ')}`,
    `  EC2 API:    ${r.ec2Endpoint} inside instances, ${r.ec2Url} from this host`,
    '  IMDS:       http://169.254.169.254 inside instances',
    '  SDK/CLI:    export AWS_ENDPOINT_URL_EC2=http://169.254.169.253 AWS_REGION=us-west-2 AWS_ACCESS_KEY_ID=me AWS_SECRET_ACCESS_KEY=x',
    `  internet:   ${r.inetAddress} (accepts instances' primary addresses only)`,
    `  router:     ip netns exec ${r.routerNetns} bash`,
    '  instances:',
    ...r.instances.map(
      (i) =>
        `    ${i.id} ${i.instanceType} ${i.primaryIp} (${i.subnetId})\n      ip netns exec ${i.netns} bash     # IMDS from this host: ${i.imdsLoopbackUrl}`,
    ),
    `  stop:       local-vpc down --name ${r.name}`,
    '',
  ];
  return lines.join('\n');
}

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`local-vpc: ${err.message}\n`);
  process.exit(1);
});
