/**
 * Every command in the user docs is exercised: `sh run` blocks are run here (with `max-pods` on PATH)
 * and compared with a following `text output` block; `sh check` blocks need a cluster, a node or AWS,
 * so every path, flag, Helm value, CDK parameter, Packer variable, environment variable and URL they
 * name is checked against the repository.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartDefaults } from '../../../infra/helm/chart.js';
import { bundleMaxPods, ipamdEnvNames, PLATFORM_ENV, ROOT } from './helpers.js';

const DOCS = ['README.md', 'architecture.md', 'configuration.md', 'operations.md', 'migration.md'];

interface Block {
  file: string;
  line: number;
  lang: string;
  tag: string;
  body: string;
}

function blocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, 'docs', file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    while (++i < lines.length && !lines[i]!.startsWith('```')) body.push(lines[i]!);
    out.push({ file, line: start + 1, lang: open[1]!, tag: open[2]!.trim(), body: body.join('\n') });
  }
  return out;
}

const all = DOCS.flatMap(blocks);
const shell = all.filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang));

// ---------------------------------------------------------------- what the repository offers

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const ipamdEnv = ipamdEnvNames();
const buildOutputs = new Set(
  [...read('scripts/bundles.mjs').matchAll(/out:\s*'([^']+)'/g)].map((m) => `${m[1]}.mjs`),
);
const cdkParams = new Set(
  [...read('cdk/params.ts').matchAll(/(?:str|bool|ctx)\('([a-zA-Z]+)'/g)].map((m) => m[1]!),
);
const packerVars = new Set(
  [...read('infra/packer/vpc-cni-node.pkr.hcl').matchAll(/^variable "([a-z_]+)"/gm)].map((m) => m[1]!),
);
const introspectionPaths = new Set(
  [...read('ipamd/server/introspection.ts').matchAll(/'(\/v1\/[a-z/-]+)'/g)].map((m) => m[1]!),
);
const caseFlags = (p: string) =>
  new Set([...read(p).matchAll(/^\s*(?:[-a-z| ]*\|\s*)?(--[a-z-]+)(?:=\*)?\)/gm)].map((m) => m[1]!));
const installFlags = caseFlags('infra/ami/install.sh');
const bootstrapFlags = caseFlags('infra/ami/vpc-cni-bootstrap');
const npmScripts = new Set(Object.keys(JSON.parse(read('package.json')).scripts));
const TOOL_ENV = new Set([
  'DESTDIR',
  'CDK_OUTDIR',
  'DIST_DIR',
  'VPC_CNI_ENV_FILE',
  'MAX_PODS_BIN',
  'CNI_VERSION',
]);
const CONTAINERS = new Set(['aws-node', 'aws-vpc-cni-init']);
const COMMANDS = new Set([
  'kubectl',
  'helm',
  'curl',
  'docker',
  'packer',
  'npx',
  'node',
  'sh',
  'bash',
  'aws',
  'max-pods',
  'vpc-cni-bootstrap',
  'systemctl',
  'journalctl',
  'cd',
  'npm',
  '/etc/eks/bootstrap.sh',
]);
const REPO_DIRS = /^(\.\/)?(infra|cdk|docs|scripts|dist|ipamd|cni|lib|maxpods)\//;

function hasValuePath(path: string): boolean {
  let v: unknown = chartDefaults();
  for (const key of path.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return false;
    v = (v as Record<string, unknown>)[key];
  }
  return true;
}

let maxPodsFlags = new Set<string>();

/** Splits on whitespace outside quotes; quotes are kept off the words. */
function words(s: string): string[] {
  return [...s.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/** Problems with one command line of a `sh check` block. */
function checkLine(line: string): string[] {
  const problems: string[] = [];
  const subs = [...line.matchAll(/\$\(([^)]*)\)/g)].map((m) => m[1]!);
  const main = line.replace(/"?\$\([^)]*\)"?/g, 'SUBST');
  let cwd = '';
  for (const segment of [...main.split(/&&|\|\||;|\|/), ...subs]) {
    let w = words(segment.replace(/\s[12]?>\s*\S+/g, ' '));
    while (w[0] && /^[A-Z_][A-Z0-9_]*=/.test(w[0])) {
      const name = w[0].split('=')[0]!;
      if (!ipamdEnv.has(name) && !TOOL_ENV.has(name)) problems.push(`unknown environment variable ${name}`);
      w = w.slice(1);
    }
    const [cmd, ...args] = w;
    if (!cmd) continue;
    if (!COMMANDS.has(cmd)) problems.push(`unexpected command ${cmd}`);
    if (cmd === 'cd') {
      cwd = args[0] ?? '';
      if (!existsSync(join(ROOT, cwd))) problems.push(`cd to missing ${cwd}`);
      continue;
    }
    for (const a of args) {
      const path = a.replace(/^file:\/\//, '');
      if (REPO_DIRS.test(path) || (cwd && /\.(ts|json|hcl|sh)$/.test(path))) {
        const base = path.replace(/^\.\//, '');
        if (base.startsWith('dist/')) {
          if (!buildOutputs.has(base.slice(5))) problems.push(`${base} is not a build output`);
        } else if (!existsSync(join(ROOT, cwd, base))) problems.push(`missing file ${join(cwd, base)}`);
      }
      const url = /^https?:\/\/127\.0\.0\.1:(\d+)(\/\S*)$/.exec(a);
      if (url) {
        if (url[1] === '61679' && !introspectionPaths.has(url[2]!))
          problems.push(`no introspection path ${url[2]}`);
        if (url[1] === '61678' && url[2] !== '/metrics')
          problems.push(`metrics are served at /metrics, not ${url[2]}`);
        if (!['61678', '61679'].includes(url[1]!)) problems.push(`unknown local port ${url[1]}`);
      }
    }
    const argsOf = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
    if (cmd === 'helm') {
      for (const kv of [...argsOf('--set'), ...argsOf('--set-string')]) {
        const key = kv.split('=')[0]!;
        if (!hasValuePath(key)) problems.push(`helm value ${key} does not exist in values.yaml`);
      }
    }
    if (cmd === 'npx' && args[0] === 'aws-cdk') {
      for (const kv of argsOf('-c'))
        if (!cdkParams.has(kv.split('=')[0]!)) problems.push(`unknown CDK parameter ${kv}`);
    }
    if (cmd === 'npx' && args[0] === 'tsx' && !existsSync(join(ROOT, cwd, args[1] ?? '')))
      problems.push(`missing ${args[1]}`);
    if (cmd === 'npm' && args[0] === 'run' && !npmScripts.has(args[1]!))
      problems.push(`no npm script ${args[1]}`);
    if (cmd === 'packer') {
      for (const kv of argsOf('-var'))
        if (!packerVars.has(kv.split('=')[0]!)) problems.push(`unknown packer variable ${kv}`);
    }
    const flagsOf = (known: Set<string>, what: string) => {
      for (const a of args.filter((x) => x.startsWith('--'))) {
        if (!known.has(a.split('=')[0]!)) problems.push(`${what} has no flag ${a}`);
      }
    };
    if (cmd === 'max-pods') flagsOf(maxPodsFlags, 'max-pods');
    if (cmd === 'vpc-cni-bootstrap') {
      flagsOf(bootstrapFlags, 'vpc-cni-bootstrap');
      for (const o of argsOf('--output'))
        if (!['number', 'nodeconfig', 'kubelet-args', 'kubelet-config'].includes(o))
          problems.push(`bad --output ${o}`);
    }
    if (cmd === 'sh' && args[0]?.endsWith('install.sh')) flagsOf(installFlags, 'install.sh');
    if (cmd === 'kubectl') {
      for (const c of argsOf('-c')) if (!CONTAINERS.has(c)) problems.push(`no container ${c}`);
      if (args[0] === 'set' && args[1] === 'env') {
        for (const kv of args.slice(3))
          if (!ipamdEnv.has(kv.split('=')[0]!)) problems.push(`kubectl set env: unknown ${kv}`);
      }
      for (const r of args.filter((x) => /^(ds|daemonset)\//.test(x)))
        if (r.split('/')[1] !== 'aws-node') problems.push(`no DaemonSet ${r}`);
    }
  }
  return problems;
}

function commandLines(body: string): string[] {
  return body
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l && !l.startsWith('#'));
}

// ---------------------------------------------------------------- tests

let t: string;
let bin: string;
beforeAll(async () => {
  t = mkdtempSync(join(tmpdir(), 'vpccni-docs-'));
  bin = join(t, 'bin');
  mkdirSync(bin);
  const bundle = await bundleMaxPods(t);
  writeFileSync(join(bin, 'max-pods'), `#!/bin/sh\nexec ${process.execPath} ${bundle} "$@"\n`);
  chmodSync(join(bin, 'max-pods'), 0o755);
  const help = spawnSync(join(bin, 'max-pods'), ['--help'], { encoding: 'utf8' }).stdout;
  maxPodsFlags = new Set([...help.matchAll(/(--[a-z][a-z-]+)/g)].map((m) => m[1]!));
}, 60_000);
afterAll(() => rmSync(t, { recursive: true, force: true }));

describe('shell blocks in the docs', () => {
  it('are all tagged run or check', () => {
    expect(shell.length).toBeGreaterThan(10);
    expect(shell.filter((b) => !['run', 'check'].includes(b.tag)).map((b) => `${b.file}:${b.line}`)).toEqual(
      [],
    );
  });

  for (const b of shell.filter((x) => x.tag === 'run')) {
    it(`run: ${b.file}:${b.line}`, () => {
      const r = spawnSync('sh', ['-e', '-c', b.body], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 90_000,
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
      });
      expect(r.stderr.replace(/npm warn[^\n]*\n?/g, '')).not.toMatch(/error/i);
      expect(r.status, r.stderr).toBe(0);
      const next = all[all.indexOf(b) + 1];
      if (next?.lang === 'text' && next.tag === 'output') expect(r.stdout.trim()).toBe(next.body.trim());
    }, 120_000);
  }

  it('check: every command names paths, flags, values and parameters that exist', () => {
    const problems = shell
      .filter((b) => b.tag === 'check')
      .flatMap((b) =>
        commandLines(b.body).flatMap((l) => checkLine(l).map((p) => `${b.file}:${b.line}: ${l}\n    ${p}`)),
      );
    expect(problems).toEqual([]);
  });

  it('the checker catches wrong names', () => {
    expect(checkLine('helm install x infra/helm/vpc-cni --set env.WARM_IP_TARGETS=1')).toEqual([
      'helm value env.WARM_IP_TARGETS does not exist in values.yaml',
    ]);
    expect(checkLine('cd cdk && npx aws-cdk synth -c instanceTyp=x')).toEqual([
      'unknown CDK parameter instanceTyp=x',
    ]);
    expect(checkLine('curl -s http://127.0.0.1:61679/v1/nope')).toEqual(['no introspection path /v1/nope']);
    expect(checkLine('max-pods --instance-typ m5.large')).toEqual(['max-pods has no flag --instance-typ']);
    expect(checkLine('packer build -var bundel=x infra/packer/vpc-cni-node.pkr.hcl')).toEqual([
      'unknown packer variable bundel=x',
    ]);
    expect(checkLine('sh infra/ami/instal.sh')).toEqual(['missing file infra/ami/instal.sh']);
    expect(checkLine('WARM_IP_TARGT=1 node dist/ipamd.mjs')).toEqual([
      'unknown environment variable WARM_IP_TARGT',
    ]);
  });
});

describe('the other pages (their own tests run their commands)', () => {
  const others = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md') && !DOCS.includes(f));

  it('name only files that exist, build outputs that exist and calculator flags that exist', () => {
    const problems: string[] = [];
    for (const b of others.flatMap(blocks).filter((x) => ['sh', 'bash', 'shell'].includes(x.lang))) {
      for (const line of commandLines(b.body)) {
        const w = words(line).filter((x) => !x.startsWith('['));
        for (const a of w) {
          if (!REPO_DIRS.test(a)) continue;
          if (a.startsWith('dist/') ? !buildOutputs.has(a.slice(5)) : !existsSync(join(ROOT, a))) {
            problems.push(`${b.file}:${b.line}: ${a} does not exist`);
          }
        }
        if (w.some((x) => x === 'max-pods' || x.endsWith('dist/max-pods.mjs'))) {
          for (const f of w.filter((x) => x.startsWith('--'))) {
            if (!maxPodsFlags.has(f.split('=')[0]!))
              problems.push(`${b.file}:${b.line}: max-pods has no flag ${f}`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const doc = read('docs/configuration.md');
  const documented = new Set([...doc.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`/g)].map((m) => m[1]!));

  it('documents every environment variable ipamd reads', () => {
    // Names that are only prefixes of others (used in messages) need no row of their own.
    const names = [...ipamdEnv].filter((n) => ![...ipamdEnv].some((o) => o !== n && o.startsWith(`${n}_`)));
    expect(names.filter((n) => !documented.has(n))).toEqual([]);
  });

  it('documents no variable ipamd does not read, apart from the DaemonSet’s own', () => {
    expect(
      [...documented].filter(
        (n) => !ipamdEnv.has(n) && !PLATFORM_ENV.has(n) && !['MY_POD_NAME', 'MY_NODE_IP'].includes(n),
      ),
    ).toEqual([]);
  });
});

describe('docs/operations.md', () => {
  const doc = read('docs/operations.md');
  it('names only metrics ipamd exports', () => {
    const exported = new Set(
      [...read('ipamd/metrics.ts').matchAll(/name: '(awscni_[a-z_]+)'/g)].map((m) => m[1]!),
    );
    const named = [...doc.matchAll(/`(awscni_[a-z_]+)`/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((n) => !exported.has(n))).toEqual([]);
  });

  it('names every introspection path', () => {
    for (const p of introspectionPaths) expect(doc).toContain(p);
  });
});

describe('docs/README.md', () => {
  it('links every page, and every link resolves', () => {
    const readme = read('docs/README.md');
    for (const f of DOCS.filter((d) => d !== 'README.md').concat('calculator.md', 'local-vpc.md'))
      expect(readme).toContain(`](${f})`);
    for (const d of DOCS) {
      for (const m of read(`docs/${d}`).matchAll(/\]\(([^)#]+)(#[^)]*)?\)/g)) {
        if (/^https?:/.test(m[1]!)) continue;
        expect(existsSync(join(ROOT, 'docs', m[1]!)), `${d} links ${m[1]}`).toBe(true);
      }
    }
  });
});
