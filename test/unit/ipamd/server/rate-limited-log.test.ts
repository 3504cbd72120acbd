/** A flood of refused requests writes a bounded number of log lines, then says how many it dropped. */
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../../ipamd/log.js';
import { RateLimitedLog } from '../../../../ipamd/server/socket.js';

function recorder() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const log = {
    info: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'info', obj, msg }),
    warn: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', obj, msg }),
    debug: () => undefined,
  } as unknown as Logger;
  return { log, lines };
}

describe('RateLimitedLog', () => {
  it('writes at most `burst` lines per window and then one summary of what it suppressed', () => {
    let now = 0;
    const { log, lines } = recorder();
    const limited = new RateLimitedLog(log, 20, 10_000, () => now);
    for (let i = 0; i < 1024; i++) limited.write('warn', { i }, 'request rejected');
    expect(lines).toHaveLength(20);
    now = 10_000;
    limited.write('warn', { i: 'next' }, 'request rejected');
    expect(lines.slice(20)).toEqual([
      { level: 'warn', obj: { suppressed: 1004, windowMs: 10_000 }, msg: 'request refusals not logged' },
      { level: 'warn', obj: { i: 'next' }, msg: 'request rejected' },
    ]);
  });
});
