/**
 * Introspection HTTP server (default 127.0.0.1:61679, or `unix:<path>`): read-only JSON views of the
 * daemon's state. The AWS VPC CNI's paths answer in its shapes (reference-views.ts); ipamd's own
 * richer views live under /v1/vpc-cni/.
 */
import { type Logger, withComponent } from '../log.js';
import { type HttpLimits, type HttpServer, jsonReply, type Route, startHttpServer } from './http.js';

export interface IntrospectionViews {
  /** The reference's documents. */
  referenceEnis(): unknown;
  /** The node's ENIConfig name; null when ipamd has no cluster to ask (404, as the reference). */
  eniConfigName(): string | null;
  networkutilsEnv(): unknown;
  ipamdEnv(): unknown;
  /** ipamd's own. */
  enis(): unknown;
  pods(): unknown;
  config(): unknown;
  health(): unknown;
}

/** The reference's paths, in its order. */
export const REFERENCE_PATHS = [
  '/v1/enis',
  '/v1/eni-configs',
  '/v1/networkutils-env-settings',
  '/v1/ipamd-env-settings',
] as const;

export async function startIntrospectionServer(opts: {
  bind: string;
  views: IntrospectionViews;
  log: Logger;
  limits?: Partial<HttpLimits>;
}): Promise<HttpServer> {
  const { views } = opts;
  const paths: Record<string, () => unknown> = {
    '/v1/enis': () => views.referenceEnis(),
    '/v1/networkutils-env-settings': () => views.networkutilsEnv(),
    '/v1/ipamd-env-settings': () => views.ipamdEnv(),
    '/v1/vpc-cni/enis': () => views.enis(),
    '/v1/vpc-cni/config': () => views.config(),
    '/v1/pods': () => views.pods(),
    '/v1/health': () => views.health(),
  };
  const routes: Record<string, Route> = {
    '/': () =>
      jsonReply({
        AvailableCommands: [
          ...REFERENCE_PATHS,
          ...Object.keys(paths).filter((p) => !REFERENCE_PATHS.includes(p as never)),
        ],
      }),
    '/v1/eni-configs': () => {
      const name = views.eniConfigName();
      return name === null
        ? jsonReply({ error: 'no Kubernetes API server: the node has no ENIConfig name' }, 404)
        : jsonReply(name);
    },
  };
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
