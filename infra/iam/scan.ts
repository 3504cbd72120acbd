/**
 * Finds the EC2 API actions a source tree calls, for the policy-vs-code test.
 * Works on the TypeScript syntax tree (identifiers only, so comments and strings never count) and
 * recognises the four ways EC2 can be called:
 *   - `XxxCommand` classes exported by @aws-sdk/client-ec2 (`new DescribeSubnetsCommand(...)`),
 *   - paginators `paginateXxx`,
 *   - methods of the aggregated `EC2` client (`ec2.describeSubnets(...)`) in files that use it,
 *   - ipamd's Query-protocol transport: `.send('DescribeSubnets', ...)` with the action as a literal.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

export interface Ec2Sdk {
  /** Names like `DescribeSubnets` for every `DescribeSubnetsCommand` the SDK exports. */
  actions: Set<string>;
}

export async function loadEc2Sdk(): Promise<Ec2Sdk> {
  const mod = (await import('@aws-sdk/client-ec2')) as Record<string, unknown>;
  const actions = new Set<string>();
  for (const name of Object.keys(mod)) {
    if (name.endsWith('Command') && name !== 'Command' && typeof mod[name] === 'function') {
      actions.add(name.slice(0, -'Command'.length));
    }
  }
  if (actions.size < 100) throw new Error('@aws-sdk/client-ec2 exports too few commands; is it installed?');
  return { actions };
}

function sourceFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e === 'node_modules' || e === 'build' || e === 'dist') continue;
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(m|c)?ts$/.test(e) && !/\.(test|spec)\.ts$/.test(e) && !e.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The EC2 actions the files under `dirs` call, each with the files (relative to root) that call it. */
export function scanEc2Actions(root: string, dirs: string[], sdk: Ec2Sdk): Map<string, string[]> {
  return scanEc2ActionsInFiles(
    root,
    dirs.flatMap((d) => sourceFiles(join(root, d))),
    sdk,
  );
}

/** Same, for an explicit file list (e.g. the sources a bundle is made of). */
export function scanEc2ActionsInFiles(root: string, files: string[], sdk: Ec2Sdk): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const note = (action: string, file: string) => {
    const files = found.get(action) ?? [];
    if (!files.includes(file)) files.push(file);
    found.set(action, files);
  };
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(root, file);
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
    const identifiers: string[] = [];
    const memberNames: string[] = [];
    const visit = (node: ts.Node) => {
      if (ts.isIdentifier(node)) identifiers.push(node.text);
      if (ts.isPropertyAccessExpression(node)) memberNames.push(node.name.text);
      const first = ts.isCallExpression(node) ? node.arguments[0] : undefined;
      if (
        first &&
        ts.isStringLiteralLike(first) &&
        ts.isPropertyAccessExpression((node as ts.CallExpression).expression) &&
        ((node as ts.CallExpression).expression as ts.PropertyAccessExpression).name.text === 'send' &&
        sdk.actions.has(first.text)
      ) {
        note(first.text, rel);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
    const usesAggregatedClient =
      identifiers.includes('EC2') && /from\s+['"]@aws-sdk\/client-ec2['"]/.test(text);
    for (const id of identifiers) {
      let m = /^([A-Z][A-Za-z0-9]+)Command$/.exec(id);
      if (m && sdk.actions.has(m[1]!)) note(m[1]!, rel);
      m = /^paginate([A-Z][A-Za-z0-9]+)$/.exec(id);
      if (m && sdk.actions.has(m[1]!)) note(m[1]!, rel);
    }
    if (usesAggregatedClient) {
      for (const name of memberNames) {
        const action = name.charAt(0).toUpperCase() + name.slice(1);
        if (/^[a-z]/.test(name) && sdk.actions.has(action)) note(action, rel);
      }
    }
  }
  return found;
}
