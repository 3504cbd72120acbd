/**
 * Reads the network configuration from stdin for the Node plugin, never more than
 * MAX_NETCONF_BYTES + 1 bytes: a runtime (or anyone who can exec the plugin) piping 100 MB gets
 * code 7 at once instead of a plugin that holds it all in memory.
 */
import { fstatSync, readSync } from 'node:fs';
import { CniError, Code, describe } from './errors.js';
import { MAX_NETCONF_BYTES, netconfTooLarge } from './netconf.js';

export interface StdinRead {
  /** The text; undefined for a terminal (VERSION may come without a config) or on an error. */
  stdin?: string;
  stdinError?: CniError;
}

const CHUNK = 64 * 1024;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** Reads `fd` to its end, or stops one byte past `limit` and reports the configuration too large. */
export function readNetconf(fd = 0, limit = MAX_NETCONF_BYTES): StdinRead {
  try {
    if (fstatSync(fd).isCharacterDevice()) return {};
    const buf = Buffer.allocUnsafe(limit + 1);
    let used = 0;
    while (used <= limit) {
      let n: number;
      try {
        n = readSync(fd, buf, used, Math.min(CHUNK, limit + 1 - used), null);
      } catch (err) {
        // A non-blocking pipe from the caller: wait for data rather than spin.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        Atomics.wait(pause, 0, 0, 5);
        continue;
      }
      if (n === 0) return { stdin: buf.toString('utf8', 0, used) };
      used += n;
    }
    return { stdinError: netconfTooLarge() };
  } catch (err) {
    return {
      stdinError: new CniError(
        Code.ioFailure,
        'cannot read the network configuration from stdin',
        describe(err),
      ),
    };
  }
}
