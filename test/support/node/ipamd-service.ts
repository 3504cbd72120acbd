/**
 * ipamd as the vpc-cni-ipamd systemd service on a node built from the AMI recipe: infra/ami/install.sh
 * stages the files a node image gets (the service's unit, /etc/vpc-cni/ipamd.env, /opt/vpc-cni,
 * /opt/cni/bin/aws-cni), the node gets them, the operator's settings are appended to ipamd.env, and
 * the INSTALLED unit is run under runc with the spec systemd.ts derives from it. The service's root
 * is the node's "/" bound (as a slave, like systemd's service namespaces) under the node directory.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type NodeHost, sleep } from './host.js';
import { REPO } from './rootfs.js';
import { type IpamdProcess, RuncContainer } from './runc.js';
import { parseUnit, serviceSpec } from './systemd.js';

export const SERVICE = 'vpc-cni-ipamd.service';

export class IpamdService {
  readonly ipamd: IpamdProcess;
  private readonly stage: string;
  private readonly runtimeDirs: { path: string; mode: string }[];

  constructor(
    private readonly node: NodeHost,
    /** VAR=value settings the operator adds to /etc/vpc-cni/ipamd.env. */
    settings: Record<string, string>,
  ) {
    this.stage = join(node.dir, 'ami-stage');
    // The AMI build: install.sh into a staging root, with this Node runtime.
    execFileSync(
      'sh',
      [join(REPO, 'infra/ami/install.sh'), '--dist', join(REPO, 'dist'), '--node', process.execPath],
      {
        env: { ...process.env, DESTDIR: this.stage },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    // The node image: what install.sh put under the paths this node keeps of its own.
    cpSync(join(this.stage, 'opt/vpc-cni'), node.path('/opt/vpc-cni'), { recursive: true });
    for (const f of ['aws-cni', 'aws-cni.mjs'])
      cpSync(join(this.stage, 'opt/cni/bin', f), node.path(`/opt/cni/bin/${f}`));
    cpSync(join(this.stage, 'etc/vpc-cni'), node.path('/etc/vpc-cni'), { recursive: true });
    appendFileSync(
      node.path('/etc/vpc-cni/ipamd.env'),
      `# added by the operator\n${Object.entries(settings)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
    );
    const unit = parseUnit(readFileSync(join(this.stage, 'etc/systemd/system', SERVICE), 'utf8'));
    const { spec, runtimeDirs } = serviceSpec(unit, {
      readNodeFile: (p) => {
        const file = node.path(p);
        return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
      },
      // The node's own paths are the test's; the rest of its filesystem is the host's.
      nodeHas: (p) =>
        existsSync(
          p.startsWith('/run') || p.startsWith('/etc/cni') || p.startsWith('/etc/vpc-cni') ? node.path(p) : p,
        ),
      nodeNetns: `/var/run/netns/${node.netns}`,
      cgroupsPath: `${node.cgroupRoot}/system.slice/${SERVICE}`,
      privateTmp: join(node.dir, 'service-tmp'),
    });
    this.runtimeDirs = runtimeDirs;
    // The node's "/" as the service sees it. Only ever a mount inside the node's namespace: from the
    // test's own filesystem this directory is empty, so removing the node directory is safe.
    spec.root.path = join(node.dir, 'service-root');
    this.ipamd = new RuncContainer(node, 'vpc-cni-ipamd', join(node.dir, 'service-bundle'), spec);
  }

  /** What systemd does at `systemctl start`: runtime directory, private /tmp, then ExecStart. */
  async start(): Promise<void> {
    for (const d of this.runtimeDirs)
      await this.node.exec('sh', ['-c', `mkdir -p -m ${d.mode} "$1"`, 'sh', d.path]);
    for (const d of ['tmp', 'var-tmp'])
      mkdirSync(join(this.node.dir, 'service-tmp', d), { recursive: true, mode: 0o1777 });
    const root = join(this.node.dir, 'service-root');
    mkdirSync(root, { recursive: true });
    await this.node.exec('sh', ['-c', 'mount --rbind / "$1" && mount --make-rslave "$1"', 'sh', root]);
    this.ipamd.start();
  }

  /** Restart=always: systemd starts the service again after it exited. */
  async restart(): Promise<void> {
    if (this.ipamd.running) await this.ipamd.wait();
    this.ipamd.start();
  }

  /** ipamd's own probe (the unit has none; this is what `ipamd-probe` tells an operator). */
  async probe(): Promise<boolean> {
    const r = await this.node.run('/opt/vpc-cni/bin/node', ['/opt/vpc-cni/lib/ipamd-probe.mjs']);
    return r.code === 0;
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.ipamd.running)
        throw new Error(
          `${SERVICE} exited (${await this.ipamd.wait()}):\n${this.ipamd.logs.slice(-30).join('\n')}`,
        );
      if (await this.probe()) return;
      await sleep(250);
    }
    throw new Error(`${SERVICE} not ready after ${timeoutMs} ms:\n${this.ipamd.logs.slice(-30).join('\n')}`);
  }

  async stop(): Promise<void> {
    await this.ipamd.stop();
  }
}
