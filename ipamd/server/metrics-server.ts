/** Prometheus metrics HTTP server (default :61678), serving ipamd/metrics.ts's registry at /metrics. */
import type { Registry } from 'prom-client';
import { type Logger, withComponent } from '../log.js';
import { collectProcessMetrics, registry as defaultRegistry } from '../metrics.js';
import { type HttpLimits, type HttpServer, jsonReply, startHttpServer } from './http.js';

export async function startMetricsServer(opts: {
  bind: string;
  log: Logger;
  /** For tests; the daemon serves the shared registry. */
  registry?: Registry;
  limits?: Partial<HttpLimits>;
}): Promise<HttpServer> {
  const registry = opts.registry ?? defaultRegistry;
  if (registry === defaultRegistry) collectProcessMetrics();
  return startHttpServer({
    bind: opts.bind,
    bindName: 'METRICS_BIND_ADDRESS',
    routes: {
      '/': () => jsonReply({ paths: ['/metrics'] }),
      '/metrics': async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
    },
    log: withComponent(opts.log, 'metrics'),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
}
