import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileLogger } from '../../../cni/log.js';

const dir = mkdtempSync(join(tmpdir(), 'vpccni-cnilog-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fileLogger', () => {
  it('appends JSON lines at or above the level, with the base fields', () => {
    const file = join(dir, 'plugin.log');
    const log = fileLogger(file, 'info', { command: 'ADD', containerId: 'c1' });
    log.debug('hidden');
    log.info('assigned', { address: '10.0.1.5' });
    log.error('failed');
    const lines = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['info', 'assigned'],
      ['error', 'failed'],
    ]);
    expect(lines[0]).toMatchObject({ command: 'ADD', containerId: 'c1', address: '10.0.1.5' });
    expect(Date.parse(lines[0].time)).not.toBeNaN();
  });

  it('never throws when the file cannot be written', () => {
    const log = fileLogger(join(dir, 'missing-dir', 'x.log'), 'debug', {});
    expect(() => log.error('still fine')).not.toThrow();
  });
});
