/**
 * Follows one named object (a node, an ENIConfig) the way client-go's reflector does: list it (by
 * name, so an absent object is an empty list with a resourceVersion to watch from), then watch from
 * that version. A watch that ends or fails is resumed from the last version seen (after an exponential
 * backoff with jitter when it failed: unreachable, 5xx, broken stream, silence, a garbled line); 410 Gone
 * (that version has been compacted away) means list again. Every `resyncMs` it lists again anyway, as
 * a safety net against a missed event. The object is handed over unvalidated: its user decides what is good.
 */
import type { Logger } from '../log.js';
import { type K8sAccess, type K8sKind, K8sRequestError, type WatchEvent } from './access.js';

export interface ObjectWatchTiming {
  /** Relist this often even when the watch looks healthy. */
  resyncMs: number;
  /** How long the API server is asked to keep one watch open (it then ends cleanly and is resumed). */
  watchTimeoutSeconds?: number;
  /** A watch silent this long is dead and reopened (default: the watch timeout plus 30 s). */
  watchIdleTimeoutMs?: number;
  /** First retry delay after a failure, doubled per consecutive failure up to backoffMaxMs. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export interface ObjectWatchOptions extends ObjectWatchTiming {
  access: K8sAccess;
  kind: K8sKind;
  name: string;
  /** The object after a list or an event; null when it does not exist (never listed, or deleted). */
  onObject(obj: Record<string, unknown> | null, why: 'list' | 'event'): void;
  log: Logger;
  random?: () => number;
}

/** 410 Gone, as an HTTP status or as a watch ERROR event's Status: the version is too old. */
class Gone extends Error {
  override name = 'Gone';
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function resourceVersionOf(obj: Record<string, unknown>): string | null {
  const meta = obj.metadata;
  const rv = isRecord(meta) ? meta.resourceVersion : undefined;
  return typeof rv === 'string' && rv !== '' ? rv : null;
}

function nameOf(obj: unknown): unknown {
  return isRecord(obj) && isRecord(obj.metadata) ? obj.metadata.name : undefined;
}

export class ObjectWatch {
  private stopped = false;
  private current: AbortController | null = null;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;
  /** The version to resume watching from; null: list first. */
  private rv: string | null = null;
  private resyncAt = 0;
  private readonly timeoutSeconds: number;
  /** Counters for tests and the log. */
  readonly stats = { lists: 0, watches: 0, gone: 0, failures: 0, events: 0 };

  constructor(private readonly o: ObjectWatchOptions) {
    // Spread over 5-10 minutes (as client-go does) so many nodes do not reconnect in step.
    this.timeoutSeconds = o.watchTimeoutSeconds ?? 300 + Math.floor((o.random ?? Math.random)() * 300);
  }

  get what(): string {
    return this.o.kind === 'node' ? `node '${this.o.name}'` : `ENIConfig '${this.o.name}'`;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Ends the watch in flight and the loop; resolves when nothing is left running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.abort();
    this.wake?.();
    await this.running;
  }

  /** Waits `ms`, or less when stopped. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    const o = this.o;
    while (!this.stopped) {
      try {
        if (this.rv === null || Date.now() >= this.resyncAt) await this.list();
        if (this.stopped) break;
        await this.watch();
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof Gone) {
          this.rv = null;
          this.stats.gone++;
          o.log.info({ object: this.what }, 'watch expired (410 Gone): listing again');
          // A server that answers Gone to every fresh version is broken: back off from the second time.
          if (this.failures++ === 0) continue;
        } else {
          this.failures++;
        }
        this.stats.failures++;
        const base = o.backoffBaseMs ?? 500;
        const cap = o.backoffMaxMs ?? 30_000;
        const delay = Math.round(
          Math.min(cap, base * 2 ** (this.failures - 1)) * (0.5 + (o.random ?? Math.random)() / 2),
        );
        o.log.warn(
          { object: this.what, err: (err as Error).message, failures: this.failures, retryMs: delay },
          'watching the API server failed; keeping the last settings and retrying',
        );
        await this.sleep(delay);
      }
    }
  }

  /** Lists the object by name: delivers it (or its absence) and sets the version to watch from. */
  private async list(): Promise<void> {
    const o = this.o;
    let list: Awaited<ReturnType<K8sAccess['listByName']>>;
    // Abortable too: stop() must not wait for an unreachable API server's timeout.
    const abort = new AbortController();
    this.current = abort;
    try {
      list = await o.access.listByName(o.kind, o.name, abort.signal);
    } catch (err) {
      if (err instanceof K8sRequestError && err.status === 410) throw new Gone(err.message);
      throw err;
    } finally {
      this.current = null;
    }
    this.stats.lists++;
    const item = list.items.find((i) => nameOf(i) === o.name);
    if (list.items.length > 0 && item === undefined) {
      o.log.warn(
        { object: this.what, items: list.items.length },
        'list by name returned other objects; ignored',
      );
    }
    if (this.stopped) return;
    this.rv = list.resourceVersion;
    this.resyncAt = Date.now() + o.resyncMs;
    this.deliver(isRecord(item) ? item : null, 'list');
  }

  /**
   * One watch from the last version seen, until the server ends it, resync time, a failure or stop.
   * After a failure other than 410 the next watch resumes from the last version (no relist needed).
   */
  private async watch(): Promise<void> {
    const o = this.o;
    const abort = new AbortController();
    this.current = abort;
    const resync = setTimeout(() => abort.abort(), Math.max(0, this.resyncAt - Date.now()));
    const opened = Date.now();
    let events = 0;
    this.stats.watches++;
    try {
      await o.access.watchByName(o.kind, o.name, this.rv ?? '0', {
        timeoutSeconds: this.timeoutSeconds,
        idleTimeoutMs: o.watchIdleTimeoutMs,
        signal: abort.signal,
        onEvent: (e) => {
          this.rv = this.handle(e) ?? this.rv;
          events++;
          this.failures = 0;
        },
      });
    } catch (err) {
      if (err instanceof K8sRequestError && err.status === 410) throw new Gone(err.message);
      throw err;
    } finally {
      clearTimeout(resync);
      this.current = null;
    }
    // A watch that ends at once, empty, over and over must not spin: only a useful one resets the backoff.
    if (events > 0 || Date.now() - opened >= 1000 || abort.signal.aborted) this.failures = 0;
    else if (!this.stopped)
      throw new K8sRequestError(`watch of ${this.what} ended at once without events`, null);
  }

  /** Applies one event; the resourceVersion to resume from, or null to keep the previous one. */
  private handle(e: WatchEvent): string | null {
    const o = this.o;
    const rv = resourceVersionOf(e.object);
    if (e.type === 'BOOKMARK') return rv;
    this.stats.events++;
    if (nameOf(e.object) !== o.name) {
      o.log.warn({ object: this.what, got: nameOf(e.object) }, 'watch event for another object; ignored');
      return rv;
    }
    if (!this.stopped) this.deliver(e.type === 'DELETED' ? null : e.object, 'event');
    return rv;
  }

  /** The user's handler must not break the watch: its errors are logged. */
  private deliver(obj: Record<string, unknown> | null, why: 'list' | 'event'): void {
    try {
      this.o.onObject(obj, why);
    } catch (err) {
      this.o.log.error(
        { object: this.what, err: (err as Error).message },
        'handling a watched object failed',
      );
    }
  }
}
