/**
 * The `max-pods` command: flags in, the number kubelet's --max-pods should get out. Flag names and the
 * plain output are the EKS AMI max-pods-calculator.sh's, so boot scripts can switch without edits.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  allInstanceTypes,
  type InstanceTypeLimits,
  instanceFamily,
  instanceTypesInFamily,
  lookupInstanceType,
} from '../lib/instance-types/index.js';
import { computeMaxPods, type Fallback, type MaxPodsOptions } from './compute.js';
import { CalculatorError, UsageError } from './errors.js';
import { OUTPUT_FORMATS, type OutputFormat, renderMany, renderOne } from './format.js';
import { instanceTypeFromImds } from './imds.js';
import { parseCniVersion } from './version.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

interface RawFlags {
  instanceType?: string;
  instanceTypeFromImds?: boolean;
  imdsHost?: string;
  cniVersion?: string;
  cniCustomNetworkingEnabled?: boolean;
  cniPrefixDelegationEnabled?: boolean;
  cniMaxEni?: number;
  showMaxAllowed?: boolean;
  trunk?: boolean;
  output: OutputFormat;
  all?: boolean;
  family?: string[];
}

const HELP_AFTER = `
Plain output is one number on stdout (with --all: "type<TAB>number" lines); notes go to stderr.

How the number is worked out (as the EKS AMI's max-pods-calculator.sh):
  enis      ENIs on the default network card, capped by --cni-max-eni,
            minus 1 with --cni-custom-networking-enabled, minus 1 with --trunk (Nitro only)
  secondary-IP mode      enis * (ipv4PerEni - 1) + 2
  prefix delegation      enis * ((ipv4PerEni - 1) * 16) + 2
                         only when --cni-version is newer than 1.8 and EC2 reports a nitro hypervisor;
                         otherwise secondary-IP mode is used and a note goes to stderr
  recommended            min(value, 110) for 30 vCPUs or fewer, else min(value, 250)
  --show-max-allowed     prints the value before that cap

Exit status: 0 ok, 1 the value cannot be given (unknown type, IMDS failure), 2 bad flags.

Examples:
  max-pods --instance-type m5.large --cni-version 1.18.3
  max-pods --instance-type-from-imds --cni-version 1.18.3 --cni-prefix-delegation-enabled
  max-pods --all --family m5,c5 --cni-version 1.18.3 --output table
`;

function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new InvalidArgumentError('must be a whole number of ENIs, 1 or more.');
  }
  return Number(value);
}

function families(value: string, previous: string[] | undefined): string[] {
  const list = value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
  if (list.length === 0) throw new InvalidArgumentError('must name at least one family, e.g. m5.');
  return [...(previous ?? []), ...list];
}

function buildProgram(io: CliIo): Command {
  return new Command('max-pods')
    .description(
      "Calculates the maxPods value for kubelet from an EC2 instance type's ENI and IP limits, " +
        'as the EKS AMI does, for one type or for all known types.',
    )
    .addOption(new Option('--instance-type <type>', 'the EC2 instance type, e.g. m5.large'))
    .addOption(
      new Option(
        '--instance-type-from-imds',
        "read this instance's type from IMDSv2 (honours AWS_EC2_METADATA_SERVICE_ENDPOINT)",
      ),
    )
    .addOption(
      new Option(
        '--imds-host <host:port>',
        'IMDS address for --instance-type-from-imds (default 169.254.169.254:80)',
      ),
    )
    .addOption(
      new Option('--cni-version <version>', 'VPC CNI version, e.g. 1.18.3 or v1.18.3-eksbuild.1 (required)'),
    )
    .addOption(
      new Option(
        '--cni-custom-networking-enabled',
        'custom networking is on: the primary ENI serves no pods',
      ),
    )
    .addOption(
      new Option('--cni-prefix-delegation-enabled', 'prefix delegation is on: each ENI slot is a /28 prefix'),
    )
    .addOption(
      new Option('--cni-max-eni <n>', 'use at most n ENIs for pods (MAX_ENI)').argParser(positiveInt),
    )
    .addOption(new Option('--show-max-allowed', 'print the value before the 110/250 cap'))
    .addOption(new Option('--trunk', 'reserve one ENI for the trunk ENI of security groups for pods'))
    .addOption(
      new Option('--output <format>', 'plain, json or table').choices(OUTPUT_FORMATS).default('plain'),
    )
    .addOption(new Option('--all', 'every known instance type'))
    .addOption(
      new Option(
        '--family <families>',
        'only these families, comma-separated (m5 is not m5a); implies --all',
      ).argParser(families),
    )
    .addHelpText('after', HELP_AFTER)
    .helpOption('-h, --help', 'show this help')
    .showHelpAfterError('(max-pods --help shows every flag)')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
}

function checkConflicts(f: RawFlags): void {
  const listing = f.all === true || f.family !== undefined;
  if (f.instanceType !== undefined && f.instanceTypeFromImds) {
    throw new UsageError('--instance-type and --instance-type-from-imds conflict; give one');
  }
  if (listing && (f.instanceType !== undefined || f.instanceTypeFromImds)) {
    throw new UsageError(
      '--all/--family list known types; they conflict with --instance-type and --instance-type-from-imds',
    );
  }
  if (f.imdsHost !== undefined && !f.instanceTypeFromImds) {
    throw new UsageError('--imds-host only applies with --instance-type-from-imds');
  }
  if (!listing && f.instanceType === undefined && !f.instanceTypeFromImds) {
    throw new UsageError(
      'You must specify an instance type: --instance-type TYPE, --instance-type-from-imds, or --all',
    );
  }
  if (f.cniVersion === undefined) {
    throw new UsageError('You must specify a CNI version with --cni-version, e.g. 1.18.3');
  }
}

/** The error for a type the table lacks, with the likeliest fix: the lower-case name or the family's sizes. */
function unknownType(name: string): CalculatorError {
  const lower = name.toLowerCase();
  let hint = '';
  if (lookupInstanceType(lower)) hint = `; did you mean ${lower}?`;
  else {
    const family = instanceFamily(lower);
    const sizes = instanceTypesInFamily(family).map((t) => t.name);
    if (sizes.length > 0) hint = `; known ${family} types: ${sizes.join(', ')}`;
  }
  return new CalculatorError(
    `unknown instance type ${JSON.stringify(name)}: not among the ${allInstanceTypes().length} known types${hint}`,
  );
}

function selectTypes(familiesWanted: string[] | undefined): InstanceTypeLimits[] {
  const all = allInstanceTypes();
  if (!familiesWanted) return all;
  const wanted = new Set(familiesWanted);
  const missing = [...wanted].filter((f) => !all.some((t) => instanceFamily(t.name) === f));
  if (missing.length > 0) {
    throw new CalculatorError(
      `unknown instance family: ${missing.join(', ')} (no known type is named FAMILY.size)`,
    );
  }
  return all.filter((t) => wanted.has(instanceFamily(t.name)));
}

/** One stderr line per kind of fallback, so --all does not print hundreds of notes. */
function summariseFallbacks(fallbacks: Fallback[][], stderr: (s: string) => void): void {
  const byKind = new Map<string, number>();
  for (const list of fallbacks) for (const f of list) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  const text: Record<string, string> = {
    'prefix-delegation':
      'prefix delegation not used (CNI not newer than 1.8, or not Nitro); secondary-IP mode for',
    trunk: 'no trunk ENI reserved (not Nitro) for',
    'no-pod-enis': 'no ENI left for pods for',
  };
  for (const [kind, n] of byKind) stderr(`note: ${text[kind]} ${n} instance type${n === 1 ? '' : 's'}\n`);
}

async function run(argv: string[], io: CliIo): Promise<void> {
  const program = buildProgram(io);
  program.parse(argv, { from: 'user' });
  const f = program.opts<RawFlags>();
  checkConflicts(f);

  const opts: MaxPodsOptions = {
    cniVersion: parseCniVersion(f.cniVersion!),
    customNetworking: f.cniCustomNetworkingEnabled === true,
    prefixDelegation: f.cniPrefixDelegationEnabled === true,
    maxEni: f.cniMaxEni,
    trunk: f.trunk === true,
  };
  const showMaxAllowed = f.showMaxAllowed === true;

  if (f.all || f.family) {
    const results = selectTypes(f.family).map((t) => computeMaxPods(t, opts));
    summariseFallbacks(
      results.map((r) => r.fallbacks),
      io.stderr,
    );
    const unknownCpu = results.filter((r) => r.recommended === null).length;
    if (!showMaxAllowed && unknownCpu > 0) {
      io.stderr(
        `note: ${unknownCpu} types have no vCPU figure, so no recommended value ("-"); see --show-max-allowed\n`,
      );
    }
    io.stdout(renderMany(results, f.output, opts, showMaxAllowed));
    return;
  }

  const name = f.instanceTypeFromImds
    ? await instanceTypeFromImds({ imdsHost: f.imdsHost, env: io.env })
    : f.instanceType!.trim();
  const limits = lookupInstanceType(name);
  if (!limits) throw unknownType(name);
  const result = computeMaxPods(limits, opts);
  for (const fb of result.fallbacks) io.stderr(`note: ${fb.message}\n`);
  if (f.output === 'plain' && !showMaxAllowed && result.recommended === null) {
    throw new CalculatorError(
      `the vCPU count of ${name} is unknown, so the 110/250 cap cannot be chosen; ` +
        `--show-max-allowed prints the uncapped value (${result.maxAllowed})`,
    );
  }
  io.stdout(renderOne(result, f.output, opts, showMaxAllowed));
}

/** Runs the command; returns the exit status instead of exiting, so tests can run it in-process. */
export async function runMaxPods(argv: string[], io: CliIo): Promise<number> {
  try {
    await run(argv, io);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed the help or its error message.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError) {
      io.stderr(`max-pods: ${err.message}\n`);
      return 2;
    }
    if (err instanceof CalculatorError) {
      io.stderr(`max-pods: ${err.message}\n`);
      return 1;
    }
    io.stderr(`max-pods: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
