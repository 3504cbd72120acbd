/**
 * Stands in for `node-fetch` in ipamd's bundle (scripts/build.mjs aliases it). client-node's KubeConfig
 * and its generated API client import it, for applyToFetchOptions and makeApiClient, which ipamd never
 * calls: it applies the kubeconfig to node:https requests (./access.ts). The real package pulls in a
 * URL parser with a 260 KB Unicode table, ~4 MB of a systemd ipamd's RSS (bench/ipamd-rss.ts --kubeconfig).
 */
function unavailable(): never {
  throw new Error('node-fetch is not part of ipamd: use node:https with KubeConfig.applyToHTTPSOptions');
}

export class Headers {
  constructor() {
    unavailable();
  }
}
export class Request {
  constructor() {
    unavailable();
  }
}
export class Response {
  constructor() {
    unavailable();
  }
}
export class FetchError extends Error {}
export class AbortError extends Error {}
export default function fetch(): never {
  unavailable();
}
