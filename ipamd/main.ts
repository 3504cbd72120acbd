/** ipamd entry point (bundled to dist/ipamd.mjs): configuration, logging, start, signals. */
import { ConfigError, loadConfig } from './config.js';
import { startDaemon } from './daemon.js';
import { createLogger } from './log.js';

async function main(): Promise<void> {
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let log: ReturnType<typeof createLogger>;
  try {
    log = createLogger(cfg.logLevel, cfg.logFile);
  } catch (err) {
    process.stderr.write(`AWS_VPC_K8S_CNI_LOG_FILE=${cfg.logFile}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (cfg.unsupportedReferenceSettings.length > 0) {
    log.warn(
      { settings: cfg.unsupportedReferenceSettings },
      `AWS VPC CNI settings vpc-cni does not implement are set and have no effect: ${cfg.unsupportedReferenceSettings.join(', ')} (docs/migration.md)`,
    );
  }
  for (const note of cfg.notes) log.info(note);
  let daemon: Awaited<ReturnType<typeof startDaemon>> | null = null;
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'signal received');
    const done = daemon ? daemon.stop() : Promise.resolve();
    done.then(
      () => process.exit(0),
      (err) => {
        log.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('unhandledRejection', (err) => {
    log.fatal({ err: (err as Error)?.message ?? String(err) }, 'unhandled rejection');
    process.exit(1);
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    daemon = await startDaemon(cfg, log);
  } catch (err) {
    log.fatal({ err: (err as Error).message }, 'ipamd failed to start');
    process.exit(1);
  }
  if (shuttingDown) await daemon.stop();
}

void main();
