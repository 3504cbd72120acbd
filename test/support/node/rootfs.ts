/**
 * The vpc-cni image's root filesystem, assembled offline from what infra/image/Dockerfile puts in it:
 * a Debian bookworm base (the node:20-bookworm-slim userland the init script runs on: dash,
 * coreutils, mawk), iptables with its xtables modules (iptables-nft, Debian's default alternative),
 * the Node runtime at /usr/local/bin/node (linked from /opt/vpc-cni/bin/node), the dist/ bundles,
 * addons and ipamd's chunks under /opt/vpc-cni/lib, portmap under /opt/vpc-cni/cni and the init
 * script. Files come from the host's Debian packages (`dpkg -L`, the same release as the image) and
 * every shared library an ELF file in it needs is added from ldd, so nothing is listed by hand.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');

/** The base image's userland the init script runs on (node:20-bookworm-slim is Debian's slim base). */
const BASE_PACKAGES = ['base-files', 'dash', 'coreutils', 'mawk'];
/** Parts of a package an image build keeps out or no program reads. */
const SKIP = /^\/usr\/share\/(doc|man|info|lintian|locale|bug)\//;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Copies one host path into the root (a symlink as a symlink), creating parents as the host has them. */
function put(root: string, path: string): void {
  // Merged /usr: /bin/x is /usr/bin/x; keep the canonical location (the root has the same links).
  const canonical = join(realpathSync(dirname(path)), path.split('/').pop()!);
  const dst = join(root, canonical);
  if (existsSync(dst) || isLink(dst)) return;
  const st = lstatSync(path);
  if (st.isDirectory()) {
    mkdirSync(dst, { recursive: true });
    return;
  }
  mkdirSync(dirname(dst), { recursive: true });
  if (st.isSymbolicLink()) symlinkSync(readlinkSync(path), dst);
  else if (st.isFile()) copyFileSync(path, dst);
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

function isElf(file: string): boolean {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  try {
    return readSync(fd, head, 0, 4, 0) === 4 && head.toString('latin1') === '\x7fELF';
  } finally {
    closeSync(fd);
  }
}

/** Shared libraries (host paths) the given ELF files load, per ldd (one run for all of them). */
function neededLibraries(files: string[]): string[] {
  if (files.length === 0) return [];
  let out: string;
  try {
    out = execFileSync('ldd', files, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (err) {
    // ldd exits 1 when any file is static; its output still lists the others.
    out = String((err as { stdout?: string }).stdout ?? '');
  }
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    if (/not found/.test(line)) throw new Error(`ldd: ${line.trim()}`);
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) libs.add(m[1]!);
  }
  return [...libs];
}

function walkFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walkFiles(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** One COPY of the Dockerfile's runtime stage, its sources as host paths. */
interface Copy {
  sources: string[];
  dest: string;
  mode?: string;
}

export interface ImageRecipe {
  /** Debian packages the stage installs (apt-get install). */
  packages: string[];
  dirs: string[];
  links: { target: string; path: string }[];
  copies: Copy[];
  user: string;
  entrypoint: string[];
  cmd: string[];
}

function expand(pattern: string): string[] {
  const dir = dirname(pattern);
  // A pattern that matches nothing stays as it is: assembling reports the missing source.
  if (!pattern.includes('*') || !existsSync(dir)) return [pattern];
  const re = new RegExp(
    `^${pattern
      .split('/')
      .pop()!
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')}$`,
  );
  return readdirSync(dir)
    .filter((f) => re.test(f))
    .map((f) => join(dir, f));
}

/**
 * Reads the runtime stage of infra/image/Dockerfile: what it installs, creates, links and copies.
 * Build-stage paths (the build's WORKDIR) are this checkout, the cni-plugins stage is the host's
 * Debian (the same release), the build context is the checkout. An instruction this reader does not
 * know fails, so the rootfs never silently differs from the image.
 */
export function readDockerfile(
  dist = join(REPO, 'dist'),
  file = join(REPO, 'infra/image/Dockerfile'),
): ImageRecipe {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const runtime = stages.find((s) => /^\S+ AS runtime\b/.test(s));
  const build = stages.find((s) => /^\S+ AS build\b/.test(s));
  if (!runtime || !build) throw new Error(`${file}: no build and runtime stages`);
  const workdir = /^WORKDIR (\S+)/m.exec(build)?.[1];
  if (!workdir) throw new Error(`${file}: the build stage has no WORKDIR`);
  const recipe: ImageRecipe = {
    packages: [],
    dirs: [],
    links: [],
    copies: [],
    user: '',
    entrypoint: [],
    cmd: [],
  };
  const hostPath = (src: string, from: string | undefined) => {
    if (from === 'build') {
      if (!src.startsWith(`${workdir}/`))
        throw new Error(`${file}: COPY --from=build ${src} is outside ${workdir}`);
      const rel = src.slice(workdir.length + 1);
      return rel.startsWith('dist/') ? join(dist, rel.slice(5)) : join(REPO, rel);
    }
    if (from === 'cni-plugins') return src;
    if (from === undefined) return join(REPO, src);
    throw new Error(`${file}: COPY --from=${from} is not a stage this reader knows`);
  };
  for (const line of runtime.split('\n').slice(1)) {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) continue;
    const [op, ...rest] = l.split(/\s+/);
    if (op === 'RUN') {
      for (const cmd of rest
        .join(' ')
        .split('&&')
        .map((c) => c.trim().split(/\s+/))) {
        if (cmd[0] === 'apt-get' && cmd[1] === 'install')
          recipe.packages.push(...cmd.slice(2).filter((a) => !a.startsWith('-')));
        else if (cmd[0] === 'mkdir') recipe.dirs.push(...cmd.slice(1).filter((a) => !a.startsWith('-')));
        else if (cmd[0] === 'ln' && cmd[1] === '-s') recipe.links.push({ target: cmd[2]!, path: cmd[3]! });
        else if (!['apt-get', 'rm'].includes(cmd[0]!))
          throw new Error(`${file}: RUN ${cmd.join(' ')} is not understood`);
      }
    } else if (op === 'COPY') {
      const flags = rest.filter((a) => a.startsWith('--'));
      const args = rest.filter((a) => !a.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice(7);
      const mode = flags.find((f) => f.startsWith('--chmod='))?.slice(8);
      const dest = args.pop()!;
      recipe.copies.push({
        sources: args.flatMap((a) => expand(hostPath(a, from))),
        dest,
        ...(mode ? { mode } : {}),
      });
    } else if (op === 'USER') recipe.user = rest[0]!;
    else if (op === 'ENTRYPOINT') recipe.entrypoint = JSON.parse(rest.join(' '));
    else if (op === 'CMD') recipe.cmd = JSON.parse(rest.join(' '));
    else throw new Error(`${file}: ${op} in the runtime stage is not understood`);
  }
  return recipe;
}

export interface RootfsOptions {
  /** Where the bundles are (npm run build); default the checkout's dist/. */
  dist?: string;
  /** The Node binary to ship; default this process's. */
  node?: string;
}

/** Builds the image's root filesystem under `root` and returns the Dockerfile's recipe. */
export function assembleImageRootfs(root: string, opts: RootfsOptions = {}): ImageRecipe {
  const recipe = readDockerfile(opts.dist);
  for (const c of recipe.copies)
    for (const src of c.sources) if (!existsSync(src)) throw new Error(`${src} is missing (npm run build?)`);
  mkdirSync(root, { recursive: true });
  // bookworm's merged /usr, and the directories every image has.
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64'])
    mkdirSync(join(root, d), { recursive: true });
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${d}`, join(root, d));
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'etc', 'root', 'usr/local/bin'])
    mkdirSync(join(root, d), { recursive: true });

  for (const pkg of [...BASE_PACKAGES, ...recipe.packages]) {
    for (const path of sh('dpkg-query', ['-L', pkg]).split('\n')) {
      if (!path.startsWith('/') || path === '/.' || SKIP.test(path)) continue;
      if (existsSync(path) || isLink(path)) put(root, path);
    }
  }
  // What maintainer scripts create: /bin/sh, and the alternatives (iptables -> iptables-nft, awk -> mawk).
  if (!isLink(join(root, 'usr/bin/sh'))) symlinkSync('dash', join(root, 'usr/bin/sh'));
  mkdirSync(join(root, 'etc/alternatives'), { recursive: true });
  for (const alt of readdirSync('/etc/alternatives')) {
    if (!isLink(join('/etc/alternatives', alt))) continue;
    const target = readlinkSync(join('/etc/alternatives', alt));
    if (existsSync(join(root, target)) || isLink(join(root, target)))
      symlinkSync(target, join(root, 'etc/alternatives', alt));
  }
  // The commands the alternatives provide (/usr/sbin/iptables -> /etc/alternatives/iptables, ...).
  for (const dir of ['/usr/bin', '/usr/sbin']) {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (!isLink(p)) continue;
      const target = readlinkSync(p);
      if (target.startsWith('/etc/alternatives/') && isLink(join(root, target)) && !isLink(join(root, p)))
        symlinkSync(target, join(root, p));
    }
  }
  // Users and groups: Debian's base-passwd masters, as a fresh image has them.
  copyFileSync('/usr/share/base-passwd/passwd.master', join(root, 'etc/passwd'));
  copyFileSync('/usr/share/base-passwd/group.master', join(root, 'etc/group'));
  // The node base image's runtime.
  copyFileSync(opts.node ?? process.execPath, join(root, 'usr/local/bin/node'));

  for (const d of recipe.dirs) mkdirSync(join(root, d), { recursive: true });
  for (const l of recipe.links) symlinkSync(l.target, join(root, l.path));
  for (const c of recipe.copies) {
    const many = c.sources.length > 1 || c.dest.endsWith('/');
    for (const src of c.sources) {
      const dst = join(root, many ? join(c.dest, src.split('/').pop()!) : c.dest);
      mkdirSync(dirname(dst), { recursive: true });
      cpSync(src, dst, { recursive: true });
      if (c.mode) execFileSync('chmod', [c.mode, dst]);
    }
  }

  // Every library any ELF file in the image loads (node, xtables-nft-multi, the xtables modules, ...).
  const seen = new Set<string>();
  let pending = walkFiles(root).filter(isElf);
  while (pending.length > 0) {
    const next: string[] = [];
    for (const lib of neededLibraries(pending)) {
      if (seen.has(lib)) continue;
      seen.add(lib);
      put(root, lib);
      // The library itself (the link's target), whose own needs the next round adds.
      const real = realpathSync(lib);
      put(root, real);
      next.push(join(root, real));
    }
    pending = next;
  }
  writeFileSync(join(root, 'etc/vpccni-rootfs'), 'assembled offline by test/support/node/rootfs.ts\n');
  return recipe;
}
