/**
 * A cap on the connections one listener holds, so a client opening thousands of idle connections
 * cannot pin thousands of descriptors in ipamd. Over the cap, the connection idle the longest is
 * closed to make room (a flood only evicts itself; a scrape that arrives still gets served); when
 * every held connection is busy with a request, the newcomer is closed instead. What was closed is
 * logged at most once per LOG_EVERY_MS, with the count, so a flood does not flood the log too.
 */
import type { Server, Socket } from 'node:net';
import type { Logger } from '../log.js';

const LOG_EVERY_MS = 10_000;

export interface ConnectionGuard {
  /** Connections held now. */
  readonly size: number;
  /** Marks a connection busy (a request in progress) or idle again (most recently used). */
  busy(socket: Socket, busy: boolean): void;
}

export function guardConnections(server: Server, max: number, log: Logger, what: string): ConnectionGuard {
  if (!Number.isInteger(max) || max < 1)
    throw new Error(`connection cap must be a whole number >= 1, got ${max}`);
  // Insertion order = least recently used first (a connection moves to the end when it turns idle).
  const held = new Map<Socket, { busy: boolean }>();
  let closed = 0;
  let lastLog = Number.NEGATIVE_INFINITY;
  let pending: NodeJS.Timeout | undefined;

  const flush = () => {
    pending = undefined;
    lastLog = Date.now();
    log.warn({ closed, cap: max }, `${what}: connections over the cap closed`);
    closed = 0;
  };
  // One line now for the first, then at most one per LOG_EVERY_MS with how many were closed.
  const report = () => {
    closed++;
    if (pending) return;
    pending = setTimeout(flush, Math.max(0, lastLog + LOG_EVERY_MS - Date.now()));
    pending.unref();
  };

  server.on('connection', (socket: Socket) => {
    held.set(socket, { busy: false });
    socket.once('close', () => held.delete(socket));
    if (held.size <= max) return;
    let victim: Socket = socket;
    for (const [s, state] of held) {
      if (s !== socket && !state.busy) {
        victim = s;
        break;
      }
    }
    held.delete(victim);
    victim.destroy();
    report();
  });

  return {
    get size() {
      return held.size;
    },
    busy(socket, busy) {
      const state = held.get(socket);
      if (!state) return;
      state.busy = busy;
      if (!busy) {
        held.delete(socket);
        held.set(socket, state);
      }
    },
  };
}
