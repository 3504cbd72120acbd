/**
 * Introspection HTTP server (default 127.0.0.1:61679): read-only JSON views of the daemon's state,
 * at the AWS VPC CNI's paths so existing debugging habits keep working.
 */
import { type Logger, withComponent } from '../log.js';
import { type HttpLimits, type HttpServer, jsonReply, type Route, startHttpServer } from './http.js';

export interface IntrospectionViews {
  enis(): unknown;
  pods(): unknown;
  config(): unknown;
  health(): unknown;
}

export async function startIntrospectionServer(opts: {
  bind: string;
  views: IntrospectionViews;
  log: Logger;
  limits?: Partial<HttpLimits>;
}): Promise<HttpServer> {
  const { views } = opts;
  const paths: Record<string, () => unknown> = {
    '/v1/enis': () => views.enis(),
    '/v1/pods': () => views.pods(),
    '/v1/ipamd-env-settings': () => views.config(),
    '/v1/health': () => views.health(),
  };
  const routes: Record<string, Route> = { '/': () => jsonReply({ paths: Object.keys(paths) }) };
  for (const [path, view] of Object.entries(paths)) {
    // Views may be sync or async; an exception becomes a 500 with the message.
    routes[path] = async () => jsonReply(await view());
  }
  return startHttpServer({
    bind: opts.bind,
    bindName: 'INTROSPECTION_BIND_ADDRESS',
    routes,
    log: withComponent(opts.log, 'introspection'),
    ...(opts.limits ? { limits: opts.limits } : {}),
  });
}
