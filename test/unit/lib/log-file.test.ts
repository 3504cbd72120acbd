// Every log file ipamd and the plugin open (lib/log-file.ts): never blocks on a FIFO, never follows a
// planted symlink or hard link, is created 0600, rotates by size; and the plugin's logs of calls ipamd
// runs stay in one directory (cni/log.ts confinePluginLogs).
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { confinePluginLogs, fileLogger } from '../../../cni/log.js';
import { createLogger } from '../../../ipamd/log.js';
import { appendLogLine, LogFileError, openLogFile, RotatingLogFile } from '../../../lib/log-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vpccni-logfile-'));
});
afterEach(() => {
  confinePluginLogs(null);
  rmSync(dir, { recursive: true, force: true });
});

describe('openLogFile', () => {
  it('creates a missing file 0600 and appends', () => {
    const f = join(dir, 'a.log');
    appendLogLine(f, 'one\n');
    appendLogLine(f, 'two\n');
    expect(readFileSync(f, 'utf8')).toBe('one\ntwo\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('refuses a FIFO without blocking, with or without a reader', async () => {
    const fifo = join(dir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    const started = Date.now();
    expect(() => openLogFile(fifo)).toThrow(/FIFO or socket nobody reads/);
    expect(Date.now() - started).toBeLessThan(1000);
    // With a reader holding it open the open succeeds, and the file type refuses it.
    const reader = spawn('sh', ['-c', `exec 3<>${fifo}; sleep 5`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(() => openLogFile(fifo)).toThrow(/not a regular file/);
    } finally {
      reader.kill('SIGKILL');
    }
  });

  it('refuses a symlink (it would redirect the write) and leaves its target alone', () => {
    const target = join(dir, 'precious');
    writeFileSync(target, 'keep\n');
    const link = join(dir, 'plugin.log');
    symlinkSync(target, link);
    expect(() => appendLogLine(link, 'evil\n')).toThrow(LogFileError);
    expect(() => openLogFile(link)).toThrow(/it is a symlink/);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
  });

  it('refuses a hard link to another file, a directory and a device', () => {
    const target = join(dir, 'precious');
    writeFileSync(target, 'keep\n');
    linkSync(target, join(dir, 'hard.log'));
    expect(() => openLogFile(join(dir, 'hard.log'))).toThrow(/hard link to another file/);
    mkdirSync(join(dir, 'd.log'));
    expect(() => openLogFile(join(dir, 'd.log'))).toThrow(LogFileError);
    expect(() => openLogFile('/dev/null')).toThrow(/not a regular file/);
  });
});

describe('rotation by size', () => {
  it('a long-lived log moves to .1 .. .keep and starts afresh', () => {
    const f = join(dir, 'ipamd', 'ipamd.log');
    const log = new RotatingLogFile(f, 100, 2);
    expect(lstatSync(join(dir, 'ipamd')).isDirectory()).toBe(true); // created like the reference's library
    const line = `${'x'.repeat(39)}\n`; // 40 bytes
    for (let i = 0; i < 8; i++) log.write(line);
    log.close();
    expect(readFileSync(f, 'utf8').length).toBeLessThanOrEqual(100);
    expect(readFileSync(`${f}.1`, 'utf8')).toBe(line.repeat(2));
    expect(existsSync(`${f}.2`)).toBe(true);
    expect(existsSync(`${f}.3`)).toBe(false);
    expect(statSync(`${f}.1`).mode & 0o777).toBe(0o600);
  });

  it('a short-lived writer (the plugin) rotates a full file before appending', () => {
    const f = join(dir, 'plugin.log');
    writeFileSync(f, 'a'.repeat(90), { mode: 0o600 });
    appendLogLine(f, `${'b'.repeat(19)}\n`, 100);
    expect(readFileSync(`${f}.1`, 'utf8')).toBe('a'.repeat(90));
    expect(readFileSync(f, 'utf8')).toBe(`${'b'.repeat(19)}\n`);
  });

  it("ipamd's own log (AWS_VPC_K8S_CNI_LOG_FILE): a planted symlink at the path is refused at start", () => {
    writeFileSync(join(dir, 'target'), 'keep\n');
    symlinkSync(join(dir, 'target'), join(dir, 'ipamd.log'));
    expect(() => createLogger('info', join(dir, 'ipamd.log'))).toThrow(
      /refusing log file .*: it is a symlink/,
    );
    expect(readFileSync(join(dir, 'target'), 'utf8')).toBe('keep\n');
    const log = createLogger('info', join(dir, 'real', 'ipamd.log'));
    log.info('hello');
    log.flush();
    expect(JSON.parse(readFileSync(join(dir, 'real', 'ipamd.log'), 'utf8'))).toMatchObject({
      msg: 'hello',
      svc: 'ipamd',
    });
  });

  it('refuses a symlinked log directory', () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'linked'));
    expect(() => new RotatingLogFile(join(dir, 'linked', 'ipamd.log'))).toThrow(/is a symlink/);
  });
});

describe('plugin logs', () => {
  it('write JSON lines to the file, or to stderr when told "stderr"', () => {
    const f = join(dir, 'plugin.log');
    fileLogger(f, 'debug', { command: 'ADD' }).debug('hello', { n: 1 });
    expect(JSON.parse(readFileSync(f, 'utf8'))).toMatchObject({
      level: 'debug',
      msg: 'hello',
      command: 'ADD',
      n: 1,
    });
    expect(() => fileLogger('stderr', 'fatal', {}).error('not at fatal')).not.toThrow();
  });

  it('in ipamd, are only opened directly in the confined directory; others are reported, not opened', () => {
    const allowed = join(dir, 'log');
    const refused: string[] = [];
    confinePluginLogs(allowed, (file) => refused.push(file));
    fileLogger(join(allowed, 'plugin.log'), 'info', {}).info('ok');
    expect(readFileSync(join(allowed, 'plugin.log'), 'utf8')).toContain('"msg":"ok"');
    const outside = join(dir, 'etc-cron.d', 'job');
    for (const f of [outside, join(allowed, '..', 'x.log'), join(allowed, 'sub', 'x.log')]) {
      fileLogger(f, 'info', {}).info('nope');
    }
    expect(refused).toEqual([outside, join(allowed, '..', 'x.log'), join(allowed, 'sub', 'x.log')]);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(join(dir, 'x.log'))).toBe(false);
  });

  it('a FIFO or symlink in the confined directory drops the lines and never blocks', () => {
    const allowed = join(dir, 'log');
    mkdirSync(allowed);
    confinePluginLogs(allowed);
    execFileSync('mkfifo', [join(allowed, 'fifo.log')]);
    writeFileSync(join(dir, 'target'), '');
    symlinkSync(join(dir, 'target'), join(allowed, 'link.log'));
    const started = Date.now();
    fileLogger(join(allowed, 'fifo.log'), 'debug', {}).error('dropped');
    fileLogger(join(allowed, 'link.log'), 'debug', {}).error('dropped');
    expect(Date.now() - started).toBeLessThan(1000);
    expect(readFileSync(join(dir, 'target'), 'utf8')).toBe('');
  });
});
