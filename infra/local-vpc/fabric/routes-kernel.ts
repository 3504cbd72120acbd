/** Reading the router's delivery routes back from the kernel (to recover from a partial batch). */
import { ROUTER_ENI_LINK_RE } from './names.js';
import { asCidr } from './routes.js';
import { mustRun } from './shell.js';

interface JsonRoute {
  dst?: string;
  dev?: string;
}

/** Destination -> link of every route in `routerNs` that points at an ENI veth. */
export async function readDeliveryRoutes(routerNs: string): Promise<Map<string, string>> {
  const out = await mustRun('ip', ['-n', routerNs, '-j', 'route', 'show']);
  const routes = new Map<string, string>();
  for (const r of JSON.parse(out || '[]') as JsonRoute[]) {
    if (r.dst && r.dev && ROUTER_ENI_LINK_RE.test(r.dev)) routes.set(asCidr(r.dst), r.dev);
  }
  return routes;
}
