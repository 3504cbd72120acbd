/** Reading the router's delivery routes back from the kernel (to recover from a partial batch). */
import { ROUTER_ENI_LINK_RE } from './names.js';
import { asCidr, type RouteTarget } from './routes.js';
import { mustRun } from './shell.js';

interface JsonRoute {
  dst?: string;
  dev?: string;
  gateway?: string;
}

/** Destination -> target of every route in `routerNs` that points at an ENI veth. */
export async function readDeliveryRoutes(routerNs: string): Promise<Map<string, RouteTarget>> {
  const out = await mustRun('ip', ['-n', routerNs, '-j', 'route', 'show']);
  const routes = new Map<string, RouteTarget>();
  for (const r of JSON.parse(out || '[]') as JsonRoute[]) {
    if (r.dst && r.dev && ROUTER_ENI_LINK_RE.test(r.dev)) {
      routes.set(asCidr(r.dst), r.gateway ? { dev: r.dev, via: r.gateway } : { dev: r.dev });
    }
  }
  return routes;
}
