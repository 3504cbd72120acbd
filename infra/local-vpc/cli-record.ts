/**
 * What `local-vpc up` records about a running VPC (`<state dir>/<name>/vpc.json`), so `status`,
 * `down` and people can find its process, namespaces and endpoints.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { validatePrefix } from './fabric/names.js';

export interface VpcRecord {
  name: string;
  pid: number;
  prefix: string;
  startedAt: string;
  vpcId: string;
  subnets: Array<{ id: string; cidr: string }>;
  routerNetns: string;
  inetNetns: string;
  inetAddress: string;
  ec2Url: string;
  ec2Endpoint: string;
  instances: Array<{
    id: string;
    instanceType: string;
    netns: string;
    primaryIp: string;
    primaryMac: string;
    subnetId: string;
    imdsLoopbackUrl: string;
  }>;
}

/** Default state directory: $LOCAL_VPC_STATE_DIR, else /run/local-vpc (gone after a reboot, like the namespaces). */
export function stateDir(): string {
  return process.env['LOCAL_VPC_STATE_DIR'] || '/run/local-vpc';
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function validateName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new Error(`invalid VPC name ${JSON.stringify(name)}: use 1-32 lowercase letters, digits or '-'`);
  }
  return name;
}

export function recordDir(dir: string, name: string): string {
  return `${dir}/${validateName(name)}`;
}

export function recordPath(dir: string, name: string): string {
  return `${recordDir(dir, name)}/vpc.json`;
}

/** The record, or undefined when there is none; a corrupt record is an error that says where. */
export function readRecord(dir: string, name: string): VpcRecord | undefined {
  const path = recordPath(dir, name);
  if (!existsSync(path)) return undefined;
  let parsed: Partial<VpcRecord>;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<VpcRecord>;
  } catch (err) {
    throw new Error(
      `${path} is not valid JSON (${(err as Error).message}); remove it and run local-vpc cleanup`,
    );
  }
  if (
    typeof parsed.pid !== 'number' ||
    typeof parsed.prefix !== 'string' ||
    !Array.isArray(parsed.instances)
  ) {
    throw new Error(`${path} lacks pid/prefix/instances; remove it and run local-vpc cleanup`);
  }
  validatePrefix(parsed.prefix);
  return parsed as VpcRecord;
}

/** Every readable record in the state directory (unreadable ones are skipped). */
export function listRecords(dir: string): VpcRecord[] {
  if (!existsSync(dir)) return [];
  const records: VpcRecord[] = [];
  for (const name of readdirSync(dir)) {
    try {
      const r = NAME_RE.test(name) ? readRecord(dir, name) : undefined;
      if (r) records.push(r);
    } catch {
      // a corrupt record names no process we could stop
    }
  }
  return records;
}

/** Writes atomically (rename), so a reader never sees half a record. */
export function writeRecord(dir: string, record: VpcRecord): void {
  mkdirSync(recordDir(dir, record.name), { recursive: true });
  const path = recordPath(dir, record.name);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

/** True while `pid` runs; a zombie (dead, not yet reaped by whoever adopted it) counts as dead. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; comm may contain spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
