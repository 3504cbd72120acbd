import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  down,
  isAlive,
  type KeptRecord,
  keptInstructions,
  logPath,
  readKept,
  recordPath,
  writeKept,
} from '../../../infra/local-vpc/demo/keep.js';

const dir = mkdtempSync(join(tmpdir(), 'demo-keep-'));
let saved: string | undefined;
beforeAll(() => {
  saved = process.env.VPCCNI_DEMO_STATE_DIR;
  process.env.VPCCNI_DEMO_STATE_DIR = dir;
});
afterAll(() => {
  if (saved === undefined) delete process.env.VPCCNI_DEMO_STATE_DIR;
  else process.env.VPCCNI_DEMO_STATE_DIR = saved;
  rmSync(dir, { recursive: true, force: true });
});

function record(over: Partial<KeptRecord> = {}): KeptRecord {
  return {
    name: 'x',
    pid: 999_999_999,
    startedAt: '2026-01-01T00:00:00Z',
    exitCode: 0,
    prefix: 'vpccni-unitkeep0',
    workDir: join(dir, 'work'),
    podsStarted: 2,
    podsFailed: 0,
    checksPassed: 4,
    checksFailed: 0,
    pods: [
      { name: 'demo-01', netns: 'vpccni-unitkeep0-pod-01', address: '10.0.1.5', node: 'node-1' },
      { name: 'demo-02', netns: 'vpccni-unitkeep0-pod-02', address: '10.0.1.6', node: 'node-1' },
    ],
    ...over,
  };
}

function sink() {
  let text = '';
  return {
    out: {
      write: (s: string) => {
        text += s;
        return true;
      },
    } as unknown as NodeJS.WritableStream,
    text: () => text,
  };
}

describe('kept demo records', () => {
  it('round-trip and validate', () => {
    writeKept(dir, record());
    expect(readKept(dir, 'x')).toMatchObject({ pid: 999_999_999, prefix: 'vpccni-unitkeep0' });
    expect(readKept(dir, 'absent')).toBeUndefined();
    writeFileSync(recordPath(dir, 'bad'), '{');
    expect(() => readKept(dir, 'bad')).toThrow(/bad.json is not valid JSON/);
    writeFileSync(recordPath(dir, 'bad'), '{"pid":1,"prefix":"/etc"}');
    expect(() => readKept(dir, 'bad')).toThrow(/invalid local VPC prefix/);
  });

  it('tells a person how to poke at it and how to stop it', () => {
    const text = keptInstructions(record());
    expect(text).toContain('ip netns exec vpccni-unitkeep0-pod-01 ping -c1 10.0.1.6');
    expect(text).toContain('bash scripts/run.sh down --name x');
    expect(keptInstructions(record({ name: 'default' }))).toMatch(/run\.sh down$/);
  });

  it('isAlive is true for this process and false for a pid that does not exist', () => {
    expect(isAlive(process.pid)).toBe(true);
    expect(isAlive(999_999_999)).toBe(false);
  });

  it('down with nothing recorded says so and fails', async () => {
    const s = sink();
    expect(await down('nothing', s.out)).toBe(1);
    expect(s.text()).toMatch(/no kept demo named "nothing"/);
  });

  it('down after the holder died removes the record, its log and the work directory', async () => {
    writeKept(dir, record());
    writeFileSync(logPath(dir, 'x'), 'holder output\n');
    mkdirSync(join(dir, 'work'));
    const s = sink();
    expect(await down('x', s.out)).toBe(0);
    expect(s.text()).toMatch(/demo "x" is down \(vpccni-unitkeep0\)/);
    expect(existsSync(recordPath(dir, 'x'))).toBe(false);
    expect(existsSync(logPath(dir, 'x'))).toBe(false);
    expect(existsSync(join(dir, 'work'))).toBe(false);
  });
});
