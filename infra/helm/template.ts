/**
 * A small Go text/template engine covering the subset Helm charts use, so the chart can be rendered
 * and validated without the helm binary. Anything outside the subset is an error, never a silent
 * mis-render: actions with pipelines, `if`/`else if`/`else`, `range` (with `$k, $v :=`), `with`,
 * `define`/`include`, comments, trim markers, and the Sprig functions listed in FUNCTIONS.
 * Missing keys are errors (stricter than Helm) so a typo in a template or in values fails a test.
 */
import { stringify } from 'yaml';

type Value = unknown;

interface TextNode {
  kind: 'text';
  text: string;
}
interface ActionNode {
  kind: 'action';
  pipe: Pipeline;
}
interface IfNode {
  kind: 'if' | 'with';
  pipe: Pipeline;
  whenTrue: Node[];
  else: Node[];
}
interface RangeNode {
  kind: 'range';
  keyVar?: string;
  valueVar?: string;
  pipe: Pipeline;
  body: Node[];
  else: Node[];
}
type Node = TextNode | ActionNode | IfNode | RangeNode;

type Operand =
  | { t: 'field'; base: '.' | '$' | string; path: string[] }
  | { t: 'literal'; value: Value }
  | { t: 'func'; name: string }
  | { t: 'sub'; pipe: Pipeline };
type Command = Operand[];
type Pipeline = Command[];

export class TemplateError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'TemplateError';
  }
}

// ---------------------------------------------------------------- lexing actions out of the text

interface Raw {
  kind: 'text' | 'action';
  text: string;
}

function splitActions(src: string, file: string): Raw[] {
  const out: Raw[] = [];
  let pos = 0;
  while (pos < src.length) {
    const open = src.indexOf('{{', pos);
    if (open < 0) {
      out.push({ kind: 'text', text: src.slice(pos) });
      break;
    }
    let text = src.slice(pos, open);
    let start = open + 2;
    if (src.startsWith('- ', start) || src.startsWith('-\n', start) || src.startsWith('-\t', start)) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    out.push({ kind: 'text', text });
    const close = findClose(src, start, file);
    let body = src.slice(start, close);
    pos = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      const m = /^\s*/.exec(src.slice(pos))!;
      pos += m[0].length;
    }
    out.push({ kind: 'action', text: body.trim() });
  }
  return out;
}

/** Index of the `}}` closing the action that starts at `from`, skipping quoted strings and comments. */
function findClose(src: string, from: string | number, file: string): number {
  let i = Number(from);
  while (i < src.length) {
    const c = src[i];
    if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) break;
      i = end + 2;
    } else if (c === '"' || c === '`') {
      i++;
      while (i < src.length && src[i] !== c) i += src[i] === '\\' && c === '"' ? 2 : 1;
      i++;
    } else if (src.startsWith('}}', i)) {
      return i;
    } else {
      i++;
    }
  }
  throw new TemplateError(
    file,
    `unclosed action starting near "${src.slice(Number(from) - 2, Number(from) + 30)}"`,
  );
}

// ---------------------------------------------------------------- parsing pipelines

function tokenize(s: string, file: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === '`') {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === '\\' && c === '"' ? 2 : 1;
      if (j >= s.length) throw new TemplateError(file, `unterminated string in "${s}"`);
      tokens.push(s.slice(i, j + 1));
      i = j + 1;
    } else if ('()|,'.includes(c)) {
      tokens.push(c);
      i++;
    } else if (s.startsWith(':=', i)) {
      tokens.push(':=');
      i += 2;
    } else {
      const m = /^[^\s()|,"`]+/.exec(s.slice(i))!;
      const word = m[0].endsWith(':') && s[i + m[0].length] === '=' ? m[0].slice(0, -1) : m[0];
      tokens.push(word);
      i += word.length;
    }
  }
  return tokens;
}

class PipeParser {
  private i = 0;
  constructor(
    private readonly tokens: string[],
    private readonly file: string,
    private readonly src: string,
  ) {}

  done(): boolean {
    return this.i >= this.tokens.length;
  }

  pipeline(): Pipeline {
    const cmds: Pipeline = [this.command()];
    while (this.tokens[this.i] === '|') {
      this.i++;
      cmds.push(this.command());
    }
    return cmds;
  }

  private command(): Command {
    const ops: Command = [];
    while (!this.done() && this.tokens[this.i] !== '|' && this.tokens[this.i] !== ')') {
      ops.push(this.operand());
    }
    if (ops.length === 0) throw new TemplateError(this.file, `empty command in "{{ ${this.src} }}"`);
    return ops;
  }

  private operand(): Operand {
    const tok = this.tokens[this.i++]!;
    if (tok === '(') {
      const pipe = this.pipeline();
      if (this.tokens[this.i++] !== ')')
        throw new TemplateError(this.file, `missing ) in "{{ ${this.src} }}"`);
      return { t: 'sub', pipe };
    }
    if (tok.startsWith('"')) return { t: 'literal', value: JSON.parse(tok) };
    if (tok.startsWith('`')) return { t: 'literal', value: tok.slice(1, -1) };
    if (/^-?\d+(\.\d+)?$/.test(tok)) return { t: 'literal', value: Number(tok) };
    if (tok === 'true' || tok === 'false') return { t: 'literal', value: tok === 'true' };
    if (tok === 'nil') return { t: 'literal', value: null };
    if (tok === '.') return { t: 'field', base: '.', path: [] };
    if (tok.startsWith('.')) return { t: 'field', base: '.', path: tok.slice(1).split('.') };
    if (tok.startsWith('$')) {
      const [name, ...path] = tok.split('.');
      return { t: 'field', base: name === '$' ? '$' : name!, path };
    }
    if (/^[a-zA-Z][a-zA-Z0-9]*$/.test(tok)) {
      if (!Object.hasOwn(FUNCTIONS, tok) && tok !== 'include') {
        throw new TemplateError(this.file, `function "${tok}" is not supported by this renderer`);
      }
      return { t: 'func', name: tok };
    }
    throw new TemplateError(this.file, `cannot parse "${tok}" in "{{ ${this.src} }}"`);
  }
}

function parsePipe(src: string, file: string): Pipeline {
  const p = new PipeParser(tokenize(src, file), file, src);
  const pipe = p.pipeline();
  if (!p.done()) throw new TemplateError(file, `unexpected text in "{{ ${src} }}"`);
  return pipe;
}

interface Frame {
  node: IfNode | RangeNode | { kind: 'define'; name: string; body: Node[] };
  inElse: boolean;
}

function parseTemplate(src: string, file: string, defines: Map<string, Node[]>): Node[] {
  const root: Node[] = [];
  const stack: Frame[] = [];
  const target = (): Node[] => {
    const top = stack[stack.length - 1];
    if (!top) return root;
    const n = top.node;
    if (n.kind === 'define') return n.body;
    if (n.kind === 'range') return top.inElse ? n.else : n.body;
    return top.inElse ? n.else : n.whenTrue;
  };
  for (const raw of splitActions(src, file)) {
    if (raw.kind === 'text') {
      if (raw.text) target().push({ kind: 'text', text: raw.text });
      continue;
    }
    const a = raw.text;
    if (a.startsWith('/*')) {
      if (!a.endsWith('*/')) throw new TemplateError(file, `comment must end with */: "${a}"`);
      continue;
    }
    const [word] = a.split(/\s+/, 1);
    const rest = a.slice(word!.length).trim();
    switch (word) {
      case 'if':
      case 'with': {
        const node: IfNode = { kind: word, pipe: parsePipe(rest, file), whenTrue: [], else: [] };
        target().push(node);
        stack.push({ node, inElse: false });
        break;
      }
      case 'range': {
        const m = /^(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.*)$/s.exec(rest);
        const node: RangeNode = {
          kind: 'range',
          keyVar: m?.[2] ? m[1] : undefined,
          valueVar: m ? (m[2] ?? m[1]) : undefined,
          pipe: parsePipe(m ? m[3]! : rest, file),
          body: [],
          else: [],
        };
        target().push(node);
        stack.push({ node, inElse: false });
        break;
      }
      case 'define': {
        const name = JSON.parse(rest) as string;
        stack.push({ node: { kind: 'define', name, body: [] }, inElse: false });
        break;
      }
      case 'else': {
        const top = stack[stack.length - 1];
        if (!top || top.node.kind === 'define' || top.inElse)
          throw new TemplateError(file, 'unexpected {{ else }}');
        top.inElse = true;
        if (rest.startsWith('if ')) {
          // `else if X` is an `if` nested in the else branch that the matching `end` also closes.
          const node: IfNode = { kind: 'if', pipe: parsePipe(rest.slice(3), file), whenTrue: [], else: [] };
          target().push(node);
          stack.push({ node, inElse: false });
          (stack[stack.length - 1] as Frame & { chained?: boolean }).chained = true;
        } else if (rest) {
          throw new TemplateError(file, `unsupported "{{ else ${rest} }}"`);
        }
        break;
      }
      case 'end': {
        let top = stack.pop() as (Frame & { chained?: boolean }) | undefined;
        if (!top) throw new TemplateError(file, 'unexpected {{ end }}');
        while (top?.chained) top = stack.pop() as (Frame & { chained?: boolean }) | undefined;
        if (top?.node.kind === 'define') defines.set(top.node.name, top.node.body);
        break;
      }
      case 'template':
      case 'block':
      case 'break':
      case 'continue':
        throw new TemplateError(file, `"{{ ${word} }}" is not supported by this renderer`);
      default:
        if (/^\$\w+\s*:?=/.test(a))
          throw new TemplateError(file, `variable assignment is not supported: "${a}"`);
        target().push({ kind: 'action', pipe: parsePipe(a, file) });
    }
  }
  if (stack.length > 0)
    throw new TemplateError(file, `missing {{ end }} for {{ ${stack[stack.length - 1]!.node.kind} }}`);
  return root;
}

// ---------------------------------------------------------------- evaluation

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function toText(v: Value): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function toYaml(v: Value): string {
  if (v === null || v === undefined) return 'null';
  return stringify(v, { lineWidth: 0 }).replace(/\n$/, '');
}

function indentLines(n: number, s: string): string {
  const pad = ' '.repeat(n);
  return s
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}

const FUNCTIONS: Record<string, (...args: Value[]) => Value> = {
  quote: (...a) => a.map((v) => JSON.stringify(toText(v))).join(' '),
  squote: (...a) => a.map((v) => `'${toText(v)}'`).join(' '),
  toString: (v: Value) => toText(v),
  toYaml: (v) => toYaml(v),
  toJson: (v) => JSON.stringify(v ?? null),
  indent: (n, s) => indentLines(Number(n), toText(s)),
  nindent: (n, s) => `\n${indentLines(Number(n), toText(s))}`,
  default: (d, v) => (truthy(v) ? v : d),
  required: (msg, v) => {
    if (v === null || v === undefined || v === '') throw new Error(toText(msg));
    return v;
  },
  trim: (s) => toText(s).trim(),
  lower: (s) => toText(s).toLowerCase(),
  upper: (s) => toText(s).toUpperCase(),
  replace: (from, to, s) => toText(s).split(toText(from)).join(toText(to)),
  trunc: (n, s) => toText(s).slice(0, Number(n)),
  trimSuffix: (suf, s) =>
    toText(s).endsWith(toText(suf)) ? toText(s).slice(0, -toText(suf).length) : toText(s),
  join: (sep, list) => (Array.isArray(list) ? list.map(toText).join(toText(sep)) : toText(list)),
  eq: (a, ...rest) => rest.some((b) => a === b),
  ne: (a, b) => a !== b,
  not: (v) => !truthy(v),
  and: (...a) => a.find((v) => !truthy(v)) ?? a[a.length - 1],
  or: (...a) => a.find((v) => truthy(v)) ?? a[a.length - 1],
  empty: (v) => !truthy(v),
  hasKey: (m, k) => typeof m === 'object' && m !== null && Object.hasOwn(m, toText(k)),
  int: (v) => Math.trunc(Number(v)),
};

interface Scope {
  dot: Value;
  root: Value;
  vars: Map<string, Value>;
  file: string;
  defines: Map<string, Node[]>;
}

/**
 * Reads a field path. Paths from the root (.Values..., $.Values...) must exist: values.yaml declares
 * every value, so a miss is a typo. Paths from a range or with item are user data and may be absent,
 * which gives nil as in Helm.
 */
function lookup(base: Value, path: string[], scope: Scope, label: string): Value {
  const strict = base === scope.root;
  let v = base;
  let where = label;
  for (const key of path) {
    if ((v === null || v === undefined) && !strict) return undefined;
    if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v)) {
      throw new TemplateError(scope.file, `${where} is not a map, cannot read .${key}`);
    }
    if (!Object.hasOwn(v, key)) {
      if (!strict) return undefined;
      throw new TemplateError(scope.file, `${where}.${key} is not set`);
    }
    v = (v as Record<string, Value>)[key];
    where = `${where}.${key}`;
  }
  return v;
}

function evalOperand(op: Operand, scope: Scope): Value {
  switch (op.t) {
    case 'literal':
      return op.value;
    case 'sub':
      return evalPipe(op.pipe, scope);
    case 'func':
      return callFunction(op.name, [], scope);
    case 'field': {
      if (op.base === '.') return lookup(scope.dot, op.path, scope, '');
      if (op.base === '$') return lookup(scope.root, op.path, scope, '$');
      if (!scope.vars.has(op.base)) throw new TemplateError(scope.file, `undefined variable ${op.base}`);
      return lookup(scope.vars.get(op.base), op.path, scope, op.base);
    }
  }
}

function callFunction(name: string, args: Value[], scope: Scope): Value {
  if (name === 'include') {
    const [tplName, ctx] = args;
    const body = scope.defines.get(toText(tplName));
    if (!body)
      throw new TemplateError(scope.file, `include of undefined template ${JSON.stringify(tplName)}`);
    return renderNodes(body, { ...scope, dot: ctx, vars: new Map() });
  }
  try {
    return FUNCTIONS[name]!(...args);
  } catch (err) {
    throw new TemplateError(scope.file, `${name}: ${(err as Error).message}`);
  }
}

function evalPipe(pipe: Pipeline, scope: Scope): Value {
  let piped: Value;
  pipe.forEach((cmd, idx) => {
    const [head, ...rest] = cmd;
    const args = rest.map((o) => evalOperand(o, scope));
    if (idx > 0) args.push(piped);
    if (head!.t === 'func') {
      piped = callFunction(head!.name, args, scope);
    } else {
      if (args.length > 0)
        throw new TemplateError(scope.file, 'only a function can take arguments or a piped value');
      piped = evalOperand(head!, scope);
    }
  });
  return piped;
}

function renderNodes(nodes: Node[], scope: Scope): string {
  let out = '';
  for (const n of nodes) {
    switch (n.kind) {
      case 'text':
        out += n.text;
        break;
      case 'action':
        out += toText(evalPipe(n.pipe, scope));
        break;
      case 'if':
      case 'with': {
        const v = evalPipe(n.pipe, scope);
        if (truthy(v)) out += renderNodes(n.whenTrue, n.kind === 'with' ? { ...scope, dot: v } : scope);
        else out += renderNodes(n.else, scope);
        break;
      }
      case 'range': {
        const v = evalPipe(n.pipe, scope);
        const entries: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => [k, (v as Record<string, Value>)[k]])
            : [];
        if (v !== null && v !== undefined && typeof v !== 'object') {
          throw new TemplateError(scope.file, `range over ${typeof v}, expected a list or map`);
        }
        if (entries.length === 0) out += renderNodes(n.else, scope);
        for (const [k, x] of entries) {
          const vars = new Map(scope.vars);
          if (n.keyVar) vars.set(n.keyVar, k);
          if (n.valueVar) vars.set(n.valueVar, x);
          out += renderNodes(n.body, { ...scope, dot: x, vars });
        }
        break;
      }
    }
  }
  return out;
}

export interface TemplateSet {
  /** Parses helpers (`define`s) first so every template can include them. */
  add(file: string, src: string): void;
  render(file: string, root: Value): string;
}

export function templateSet(): TemplateSet {
  const defines = new Map<string, Node[]>();
  const parsed = new Map<string, Node[]>();
  return {
    add(file, src) {
      parsed.set(file, parseTemplate(src, file, defines));
    },
    render(file, root) {
      const nodes = parsed.get(file);
      if (!nodes) throw new Error(`template ${file} was not added`);
      return renderNodes(nodes, { dot: root, root, vars: new Map(), file, defines });
    },
  };
}
