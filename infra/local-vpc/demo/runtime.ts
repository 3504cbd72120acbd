/**
 * A container runtime's half of CNI, as libcni does it: read the conflist ipamd wrote, find each
 * plugin's binary on CNI_PATH, exec it inside the node with the CNI_* environment and the plugin's
 * configuration (plus the previous plugin's result) on stdin. ADD runs the chain in order, DEL in
 * reverse with the cached ADD result as prevResult.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandResult } from '../fabric/shell.js';

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string }>;
}

/** Runs a command inside the node's namespace (the VPC's exec). */
export type NodeExec = (
  cmd: string,
  args: string[],
  opts: { input: string; env: NodeJS.ProcessEnv; timeoutMs: number },
) => Promise<CommandResult>;

export interface PodRef {
  containerId: string;
  netnsPath: string;
  ifName: string;
  podNamespace: string;
  podName: string;
}

/** A plugin's failure, with the CNI error code it reported (or -1 when it printed none). */
export class CniCallError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly code: number,
    message: string,
  ) {
    super(`${command} ${plugin}: ${message}`);
    this.name = 'CniCallError';
  }

  /** CNI code 11: the plugin asks the runtime to try again later (ipamd's pool is growing). */
  get retryable(): boolean {
    return this.code === 11;
  }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Parses and checks a conflist; errors say which field is wrong and in which file. */
export function parseConfList(text: string, source: string): ConfList {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source} is not valid JSON: ${(err as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error(`${source} must hold a JSON object`);
  }
  const o = doc as Record<string, unknown>;
  if (typeof o.cniVersion !== 'string' || o.cniVersion === '') {
    throw new Error(`${source}: "cniVersion" must be a non-empty string`);
  }
  if (typeof o.name !== 'string' || !NAME_RE.test(o.name)) {
    throw new Error(`${source}: "name" must be a network name (letters, digits, _ . -)`);
  }
  if (!Array.isArray(o.plugins) || o.plugins.length === 0) {
    throw new Error(`${source}: "plugins" must be a non-empty array`);
  }
  const plugins = o.plugins.map((p, i) => {
    if (p === null || typeof p !== 'object' || Array.isArray(p)) {
      throw new Error(`${source}: plugins[${i}] must be an object`);
    }
    const type = (p as Record<string, unknown>).type;
    if (typeof type !== 'string' || !TYPE_RE.test(type)) {
      throw new Error(`${source}: plugins[${i}].type must be a plugin binary name`);
    }
    return p as Record<string, unknown> & { type: string };
  });
  return { cniVersion: o.cniVersion, name: o.name, plugins };
}

export function readConfList(path: string): ConfList {
  return parseConfList(readFileSync(path, 'utf8'), path);
}

/** The first executable `type` in the CNI_PATH directories, as libcni's FindInPath. */
export function findPlugin(type: string, cniPath: readonly string[]): string {
  for (const dir of cniPath) {
    const candidate = join(dir, type);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new Error(`CNI plugin "${type}" not found in CNI_PATH ${cniPath.join(':')}`);
}

/** The stdin a plugin gets: its own config, the list's name and version, and the previous result. */
export function pluginConfig(
  list: ConfList,
  plugin: ConfList['plugins'][number],
  prevResult: unknown,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

export class CniRuntime {
  constructor(
    private readonly list: ConfList,
    private readonly cniPath: readonly string[],
    private readonly exec: NodeExec,
    /** PATH for the plugins (the bundled plugin's `#!/usr/bin/env node` needs node on it). */
    private readonly path: string,
  ) {}

  /** ADD through the whole chain; returns the last plugin's result. */
  async add(pod: PodRef): Promise<Record<string, unknown>> {
    let prev: Record<string, unknown> | undefined;
    for (const plugin of this.list.plugins) {
      prev = await this.call('ADD', plugin, pod, prev);
    }
    return prev!;
  }

  /** DEL through the chain in reverse; every plugin runs even when an earlier one failed. */
  async del(pod: PodRef, cached: Record<string, unknown> | undefined): Promise<void> {
    const errors: string[] = [];
    for (const plugin of [...this.list.plugins].reverse()) {
      try {
        await this.call('DEL', plugin, pod, cached);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(errors.join('; '));
  }

  private async call(
    command: 'ADD' | 'DEL',
    plugin: ConfList['plugins'][number],
    pod: PodRef,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<Record<string, unknown>> {
    const binary = findPlugin(plugin.type, this.cniPath);
    const r = await this.exec(binary, [], {
      input: JSON.stringify(pluginConfig(this.list, plugin, prevResult)),
      env: {
        PATH: this.path,
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.containerId,
        CNI_NETNS: pod.netnsPath,
        CNI_IFNAME: pod.ifName,
        CNI_PATH: this.cniPath.join(':'),
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.podNamespace};K8S_POD_NAME=${pod.podName};K8S_POD_INFRA_CONTAINER_ID=${pod.containerId}`,
      },
      timeoutMs: 30_000,
    });
    const out = r.stdout.trim();
    if (r.code !== 0) {
      const err = parsePluginError(out);
      throw new CniCallError(
        plugin.type,
        command,
        err?.code ?? -1,
        err
          ? `${err.msg}${err.details ? ` (${err.details})` : ''}`
          : r.stderr.trim() || out || `exit ${r.code}`,
      );
    }
    if (command === 'DEL' || out === '') return prevResult ?? {};
    try {
      return JSON.parse(out) as Record<string, unknown>;
    } catch {
      throw new CniCallError(
        plugin.type,
        command,
        -1,
        `printed a result that is not JSON: ${out.slice(0, 200)}`,
      );
    }
  }
}

/** The CNI error object a failing plugin prints on stdout, when it printed one. */
export function parsePluginError(
  stdout: string,
): { code: number; msg: string; details?: string } | undefined {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code !== 'number' || typeof e.msg !== 'string') return undefined;
    return { code: e.code, msg: e.msg, ...(typeof e.details === 'string' ? { details: e.details } : {}) };
  } catch {
    return undefined;
  }
}
