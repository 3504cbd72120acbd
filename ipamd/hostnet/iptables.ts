/**
 * iptables through iptables-save / iptables-restore: read the current state, compute the smallest
 * restore script that reaches the desired state, apply it in one atomic `iptables-restore --noflush`.
 *
 * Ownership: ipamd owns the chains matching OWNED_CHAIN (flushed and rebuilt when they differ) and,
 * in built-in chains, only the rules carrying an "AWS..." comment or jumping to an owned chain. Every
 * other rule (kube-proxy's, the administrator's) is never touched. ipamd's rules in a built-in chain
 * are appended, or, for the chains a table lists in `atTop` (drops), inserted in front of the others;
 * rules already in the wanted order stay where they are either way.
 */
import { spawn } from 'node:child_process';
import { type DesiredIptables, OWNED_CHAIN, type TableRules } from './node-rules.js';

/** chain name -> rule specs (text after "-A <chain> "), per table. */
export type SavedTables = Map<string, Map<string, string[]>>;

const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']);
/** The tables ipamd keeps rules in. */
export const TABLES = ['nat', 'mangle', 'filter'] as const;
export type Table = (typeof TABLES)[number];

export function parseIptablesSave(text: string): SavedTables {
  const tables: SavedTables = new Map();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = new Map();
      tables.set(line.slice(1), current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current && line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (!current.has(name)) current.set(name, []);
    } else if (current && line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const spec = sp < 0 ? '' : rest.slice(sp + 1);
      if (!current.has(chain)) current.set(chain, []);
      current.get(chain)!.push(spec);
    }
  }
  return tables;
}

/** A rule ipamd put into a built-in chain. */
export function isOwnedRule(spec: string): boolean {
  return /--comment "?AWS[ ,]/.test(spec) || /-j AWS-(SNAT|CONNMARK)-CHAIN-\d+(\s|$)/.test(spec);
}

const sameList = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** Restore-script lines for one table, or [] when it already matches. */
function planTable(table: string, current: Map<string, string[]>, desired: TableRules): string[] {
  const declare: string[] = [];
  const remove: string[] = [];
  const append: string[] = [];
  const drop: string[] = [];

  for (const [chain, rules] of Object.entries(desired.owned)) {
    const have = current.get(chain);
    if (have && sameList(have, rules)) continue;
    declare.push(`:${chain} - [0:0]`); // declaring a chain with --noflush creates or flushes it
    for (const r of rules) append.push(`-A ${chain} ${r}`);
  }
  for (const chain of current.keys()) {
    if (OWNED_CHAIN.test(chain) && !(chain in desired.owned)) {
      declare.push(`:${chain} - [0:0]`);
      drop.push(`-X ${chain}`);
    }
  }

  const builtins = new Set([
    ...Object.keys(desired.builtin),
    ...[...current.keys()].filter((c) => BUILTIN_CHAINS.has(c)),
  ]);
  for (const chain of builtins) {
    const ours = (current.get(chain) ?? []).filter(isOwnedRule);
    const want = desired.builtin[chain] ?? [];
    if (sameList(ours, want)) continue;
    // Delete by the saved spec (always matches), then add in the wanted order.
    for (const r of ours) remove.push(`-D ${chain} ${r}`);
    const atTop = desired.atTop?.includes(chain) ?? false;
    want.forEach((r, i) => {
      append.push(atTop ? `-I ${chain} ${i + 1} ${r}` : `-A ${chain} ${r}`);
    });
  }

  if (declare.length + remove.length + append.length + drop.length === 0) return [];
  return [`*${table}`, ...declare, ...remove, ...append, ...drop, 'COMMIT'];
}

/** The iptables-restore --noflush script that turns `current` into `desired`, or null if none is needed. */
export function planIptablesRestore(current: SavedTables, desired: DesiredIptables): string | null {
  const lines: string[] = [];
  for (const table of TABLES) {
    lines.push(...planTable(table, current.get(table) ?? new Map(), desired[table]));
  }
  return lines.length === 0 ? null : `${lines.join('\n')}\n`;
}

export const NO_RULES: DesiredIptables = {
  nat: { builtin: {}, owned: {} },
  mangle: { builtin: {}, owned: {} },
  filter: { builtin: {}, owned: {} },
};

/** How iptables is reached; tests substitute a fake, the daemon uses the system binaries. */
export interface IptablesRunner {
  save(table: Table): Promise<string>;
  restore(script: string): Promise<void>;
}

export function systemIptables(
  bins = { save: 'iptables-save', restore: 'iptables-restore' },
): IptablesRunner {
  return {
    save: (table) => run(bins.save, ['-t', table]),
    restore: async (script) => {
      await run(bins.restore, ['--noflush', '--wait=10'], script);
    },
  };
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `cannot run ${cmd}: ${e.code === 'ENOENT' ? 'not installed (install iptables)' : e.message}`,
        ),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const stderr = Buffer.concat(err).toString('utf8').trim();
      const detail = input ? `\n--- input ---\n${input}` : '';
      reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr}${detail}`));
    });
    child.stdin.on('error', () => {}); // reported through 'close'
    child.stdin.end(input ?? '');
  });
}

/** Reads ipamd's tables, applies the difference in one restore; returns the script applied, if any. */
export async function applyIptables(
  runner: IptablesRunner,
  desired: DesiredIptables,
): Promise<string | null> {
  const saved = await Promise.all(TABLES.map((t) => runner.save(t)));
  const current = parseIptablesSave(saved.join('\n'));
  const script = planIptablesRestore(current, desired);
  if (script) await runner.restore(script);
  return script;
}
