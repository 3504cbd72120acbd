/**
 * Keeps ipamd's cluster settings current while it runs: watches its node object (max pods, the
 * label/annotation naming its ENIConfig) and, under custom networking, the ENIConfig(s) the node names
 * (the explicit one, or the zone's and "default" as fallbacks). Operators relabel nodes, edit ENIConfigs
 * and change max pods at run time; as in the reference, the change applies to the next ENI ipamd creates
 * (existing ENIs stay where they are).
 *
 * A malformed node or ENIConfig update is logged and ignored: the last good settings stay. An ENIConfig
 * that the node names but that does not exist (or has never been valid) is reported as a problem, so
 * ipamd holds new ENIs rather than putting pods in a subnet the operator has moved away from.
 */
import type { Logger } from '../log.js';
import type { K8sAccess } from './access.js';
import {
  type EniConfigCandidate,
  eniConfigCandidates,
  isUnschedulable,
  maxPodsOf,
  validateEniConfigObject,
} from './node-context.js';
import { ObjectWatch, type ObjectWatchTiming } from './object-watch.js';

export interface EniConfigSpec {
  subnet: string;
  /** Empty when the ENIConfig lists none: the primary ENI's groups apply. */
  securityGroups: string[];
}

export interface FollowedSettings {
  maxPods: number | null;
  eniConfigName: string | null;
  /** The last good spec of the ENIConfig in use. */
  eniConfig: EniConfigSpec | null;
  /** Why new ENIs must wait (the named ENIConfig is missing or was never valid); null when usable. */
  eniConfigProblem: string | null;
  /** The node is cordoned (node.kubernetes.io/unschedulable:NoSchedule). */
  unschedulable?: boolean;
}

export interface FollowOptions extends ObjectWatchTiming {
  access: K8sAccess;
  nodeName: string;
  availabilityZone: string;
  eniConfigLabel: string;
  eniConfigAnnotation: string;
  /** Custom networking with no local ENIConfig: follow the ENIConfig too. */
  wantEniConfig: boolean;
  /** What ipamd started with (its start-up read). */
  initial: Omit<FollowedSettings, 'eniConfigProblem'>;
  /** Called once per change, after it is logged; errors are logged, never thrown at the watch. */
  onChange(next: FollowedSettings, prev: FollowedSettings): void;
  log: Logger;
  random?: () => number;
}

interface EniConfigState {
  watch: ObjectWatch;
  /** False until the first list answered: the choice between fallbacks waits for every candidate. */
  seen: boolean;
  exists: boolean;
  good: EniConfigSpec | null;
  error: string | null;
}

const sameSpec = (a: EniConfigSpec | null, b: EniConfigSpec | null) =>
  JSON.stringify(a) === JSON.stringify(b);

function describeSpec(s: EniConfigSpec | null): string {
  if (!s) return 'none';
  return `${s.subnet} [${s.securityGroups.join(',') || "primary ENI's groups"}]`;
}

/** "maxPods 5 → 8; ENIConfig pods-a → pods-b; ..." with only what changed. */
export function describeChange(prev: FollowedSettings, next: FollowedSettings): string {
  const parts: string[] = [];
  if (prev.maxPods !== next.maxPods)
    parts.push(`maxPods ${prev.maxPods ?? 'unset'} → ${next.maxPods ?? 'unset'}`);
  if (prev.eniConfigName !== next.eniConfigName) {
    parts.push(`ENIConfig ${prev.eniConfigName ?? 'none'} → ${next.eniConfigName ?? 'none'}`);
  }
  if (!sameSpec(prev.eniConfig, next.eniConfig)) {
    parts.push(`subnet/security groups ${describeSpec(prev.eniConfig)} → ${describeSpec(next.eniConfig)}`);
  }
  if ((prev.unschedulable ?? false) !== (next.unschedulable ?? false)) {
    parts.push(next.unschedulable ? 'node cordoned' : 'node schedulable again');
  }
  if (prev.eniConfigProblem !== next.eniConfigProblem) {
    parts.push(
      next.eniConfigProblem
        ? `new ENIs held: ${next.eniConfigProblem}`
        : `new ENIs allowed again (was: ${prev.eniConfigProblem})`,
    );
  }
  return parts.join('; ');
}

export class ClusterFollower {
  private settings: FollowedSettings;
  /** The last good reading of the node; null until the first one. */
  private node: {
    maxPods: number | undefined;
    candidates: EniConfigCandidate[];
    unschedulable: boolean;
  } | null = null;
  private readonly eniConfigs = new Map<string, EniConfigState>();
  private readonly nodeWatch: ObjectWatch;
  private nodeMissingLogged = false;
  private stopped = false;

  constructor(private readonly o: FollowOptions) {
    this.settings = { ...o.initial, eniConfigProblem: null };
    this.nodeWatch = this.watchOf('node', o.nodeName, (obj) => this.onNode(obj));
  }

  /** The settings in force now. */
  get current(): FollowedSettings {
    return this.settings;
  }

  /** Watch counters per object (tests, introspection). */
  get watches(): Record<string, ObjectWatch['stats']> {
    const out: Record<string, ObjectWatch['stats']> = { [`node/${this.o.nodeName}`]: this.nodeWatch.stats };
    for (const [name, s] of this.eniConfigs) out[`eniconfig/${name}`] = s.watch.stats;
    return out;
  }

  start(): void {
    this.nodeWatch.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([this.nodeWatch.stop(), ...[...this.eniConfigs.values()].map((s) => s.watch.stop())]);
    this.eniConfigs.clear();
  }

  private watchOf(
    kind: 'node' | 'eniconfig',
    name: string,
    onObject: (obj: Record<string, unknown> | null) => void,
  ): ObjectWatch {
    const o = this.o;
    return new ObjectWatch({
      access: o.access,
      kind,
      name,
      onObject,
      log: o.log,
      resyncMs: o.resyncMs,
      watchTimeoutSeconds: o.watchTimeoutSeconds,
      watchIdleTimeoutMs: o.watchIdleTimeoutMs,
      backoffBaseMs: o.backoffBaseMs,
      backoffMaxMs: o.backoffMaxMs,
      random: o.random,
    });
  }

  private onNode(obj: Record<string, unknown> | null): void {
    const o = this.o;
    if (obj === null) {
      if (!this.nodeMissingLogged) {
        o.log.warn(
          { node: o.nodeName },
          'node object not found in the API server; keeping the last settings',
        );
      }
      this.nodeMissingLogged = true;
      return;
    }
    this.nodeMissingLogged = false;
    let reading: NonNullable<ClusterFollower['node']>;
    try {
      reading = {
        maxPods: maxPodsOf(obj, o.nodeName),
        candidates: o.wantEniConfig ? eniConfigCandidates(obj, o) : [],
        unschedulable: isUnschedulable(obj),
      };
    } catch (err) {
      o.log.warn(
        { err: (err as Error).message },
        'ignoring a malformed node update; keeping the last good settings',
      );
      return;
    }
    this.node = reading;
    this.followEniConfigs(reading.candidates.map((c) => c.name));
    this.recompute();
  }

  /** Starts watches for newly named ENIConfigs and ends those no longer named. */
  private followEniConfigs(names: string[]): void {
    for (const [name, state] of this.eniConfigs) {
      if (names.includes(name)) continue;
      this.eniConfigs.delete(name);
      state.watch.stop().catch(() => undefined);
    }
    for (const name of names) {
      if (this.eniConfigs.has(name) || this.stopped) continue;
      const state: EniConfigState = {
        watch: this.watchOf('eniconfig', name, (obj) => this.onEniConfig(name, state, obj)),
        seen: false,
        exists: false,
        good: null,
        error: null,
      };
      this.eniConfigs.set(name, state);
      state.watch.start();
    }
  }

  private onEniConfig(name: string, state: EniConfigState, obj: Record<string, unknown> | null): void {
    // A late event from a watch already being stopped.
    if (this.eniConfigs.get(name) !== state) return;
    state.seen = true;
    if (obj === null) {
      state.exists = false;
      state.good = null;
      state.error = null;
    } else {
      state.exists = true;
      try {
        state.good = validateEniConfigObject(name, obj);
        state.error = null;
      } catch (err) {
        state.error = (err as Error).message;
        this.o.log.warn(
          { eniConfig: name, err: state.error, keeping: state.good },
          'ignoring a malformed ENIConfig update; keeping the last good settings',
        );
      }
    }
    this.recompute();
  }

  /** The ENIConfig part of the settings, or null while a candidate has not been listed yet. */
  private chooseEniConfig(
    candidates: EniConfigCandidate[],
  ): Pick<FollowedSettings, 'eniConfigName' | 'eniConfig' | 'eniConfigProblem'> | null {
    const states = candidates.map((c) => ({ c, s: this.eniConfigs.get(c.name) }));
    if (states.some(({ s }) => !s?.seen)) return null;
    const chosen = states.find(({ s }) => s?.exists);
    if (chosen?.s?.good)
      return { eniConfigName: chosen.c.name, eniConfig: chosen.s.good, eniConfigProblem: null };
    const keep = this.settings.eniConfig;
    if (chosen) {
      return {
        eniConfigName: chosen.c.name,
        eniConfig: keep,
        eniConfigProblem: `ENIConfig '${chosen.c.name}' (named by ${chosen.c.from}) is invalid: ${chosen.s?.error}`,
      };
    }
    const first = candidates[0];
    const rest = candidates.slice(1).map((c) => `'${c.name}'`);
    return {
      eniConfigName: first?.name ?? null,
      eniConfig: keep,
      eniConfigProblem: `ENIConfig '${first?.name}' not found${rest.length > 0 ? ` (nor ${rest.join(', ')})` : ''}, named by ${first?.from} of node '${this.o.nodeName}'`,
    };
  }

  private recompute(): void {
    if (!this.node || this.stopped) return;
    const prev = this.settings;
    // A kubelet that has not reported capacity yet does not unset max pods.
    const next: FollowedSettings = { ...prev, maxPods: this.node.maxPods ?? prev.maxPods };
    // Present once the node has been cordoned (settings of a node never cordoned look as before).
    if (this.node.unschedulable || prev.unschedulable !== undefined)
      next.unschedulable = this.node.unschedulable;
    if (this.o.wantEniConfig) Object.assign(next, this.chooseEniConfig(this.node.candidates) ?? {});
    const change = describeChange(prev, next);
    if (change === '') return;
    this.settings = next;
    const log = next.eniConfigProblem && next.eniConfigProblem !== prev.eniConfigProblem ? 'warn' : 'info';
    this.o.log[log](
      {
        node: this.o.nodeName,
        from: { ...prev, eniConfigProblem: undefined },
        to: { ...next, eniConfigProblem: undefined },
        problem: next.eniConfigProblem,
      },
      `cluster settings changed: ${change}`,
    );
    try {
      this.o.onChange(next, prev);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'applying changed cluster settings failed');
    }
  }
}
