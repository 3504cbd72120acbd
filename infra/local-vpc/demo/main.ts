/**
 * `demo` (bundled to dist/demo.mjs; `bash scripts/run.sh` runs it): the whole system on a local VPC.
 *
 *   demo [--instances 2] [--instance-type m5.large] [--pods N] [--concurrency 4] [--keep [--name default]]
 *   demo down [--name default]
 *
 * Without --keep it builds everything, reports, tears everything down and exits 0 only when every
 * pod started and every connectivity check passed. SIGINT/SIGTERM tear down before exiting.
 */
import { constants } from 'node:os';
import { Command } from 'commander';
import { locateBundles } from './cluster.js';
import { Demo } from './demo.js';
import { demoStateDir, down, HOLDING_MARKER, keptInstructions, startHolder, writeKept } from './keep.js';
import { type DemoOptions, OptionError, parseOptions, type RawOptions } from './options.js';

function withRunOptions(cmd: Command): Command {
  return cmd
    .option('--instances <n>', 'instances to launch (1-8)', '2')
    .option('--instance-type <type>', 'EC2 instance type of every instance', 'm5.large')
    .option(
      '--pods <n>',
      'pods to start, spread over the instances (default: enough to reach a secondary ENI)',
    )
    .option('--concurrency <n>', 'ADD/DEL calls in flight per node', '4')
    .option('--name <name>', 'name of a kept demo', 'default');
}

/** Arguments for the background holder: the same options, minus --keep. */
function holdArgs(o: DemoOptions): string[] {
  return [
    '--instances',
    String(o.instances),
    '--instance-type',
    o.instanceType,
    '--pods',
    String(o.pods),
    '--concurrency',
    String(o.concurrency),
    '--name',
    o.name,
  ];
}

/** Runs the demo in this process; `hold` keeps it up after the report until SIGTERM/SIGINT. */
async function runHere(opts: DemoOptions, hold: boolean, tty: boolean): Promise<number> {
  const demo = new Demo(opts, locateBundles(import.meta.url), { out: process.stdout, tty });
  let releaseHold: (() => void) | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (releaseHold) {
      releaseHold();
      return;
    }
    if (interrupted) return;
    interrupted = true;
    if (sig !== 'SIGPIPE') process.stdout.write(`\n${sig}: tearing down\n`);
    void demo.teardown().finally(() => process.exit(128 + (constants.signals[sig] ?? 15)));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that went away (`| head`) must not kill us before the teardown: stop writing, stop the run.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    demo.silence();
    onSignal('SIGPIPE');
  });
  return demo.run(
    hold
      ? async (outcome, exitCode) => {
          const record = {
            ...outcome,
            name: opts.name,
            pid: process.pid,
            startedAt: new Date().toISOString(),
            exitCode,
          };
          writeKept(demoStateDir(), record);
          process.stdout.write(`${keptInstructions(record)}\n${HOLDING_MARKER}${exitCode}\n`);
          await new Promise<void>((resolve) => {
            const keepAlive = setInterval(() => {}, 1 << 30);
            releaseHold = () => {
              clearInterval(keepAlive);
              resolve();
            };
          });
        }
      : undefined,
  );
}

const program = new Command('demo')
  .description(
    'Run vpc-cni end to end on a local VPC: instances, ipamd, pods through the CNI plugin, connectivity',
  )
  // The subcommands repeat the run options; without this the root would swallow `hold --pods 4`.
  .enablePositionalOptions();

withRunOptions(program)
  .option('--keep', 'leave everything running until `demo down`')
  .action(async (raw: RawOptions) => {
    const opts = parseOptions(raw);
    const tty = process.stdout.isTTY === true;
    process.exitCode = opts.keep
      ? await startHolder(process.argv[1]!, holdArgs(opts), opts.name, process.stdout, tty)
      : await runHere(opts, false, tty);
  });

withRunOptions(program.command('hold', { hidden: true }))
  .description('run the demo and keep it up until SIGTERM (what --keep starts in the background)')
  .action(async (raw: RawOptions) => {
    const opts = parseOptions({ ...raw, keep: true });
    process.exitCode = await runHere(opts, true, process.env['VPCCNI_DEMO_TTY'] === '1');
  });

program
  .command('down')
  .description('stop a demo started with --keep and remove everything it made')
  .option('--name <name>', 'name of the kept demo', 'default')
  .action(async (raw: { name: string }) => {
    const { name } = parseOptions({ name: raw.name });
    process.exitCode = await down(name, process.stdout);
  });

program.parseAsync(process.argv).then(
  () => process.exit(),
  (err: Error) => {
    process.stderr.write(`demo: ${err instanceof OptionError ? '' : 'error: '}${err.message}\n`);
    process.exit(err instanceof OptionError ? 2 : 1);
  },
);
