/**
 * Parses listen addresses the way the AWS VPC CNI's env vars spell them: "127.0.0.1:61679",
 * ":61678" (every interface), "[::1]:61679", "localhost:0".
 */
export interface BindAddress {
  /** undefined = every interface (Node listens on :: / 0.0.0.0). */
  host: string | undefined;
  port: number;
}

export function parseBind(value: string, name = 'bind address'): BindAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(value.trim());
  if (!m) {
    throw new Error(`${name} "${value}" is not HOST:PORT (e.g. "127.0.0.1:61679", ":61678", "[::1]:61679")`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`${name} "${value}": port ${port} is above 65535`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

/** Whether a listener on this host is reachable only from the node itself. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * The TCP ports of these listen addresses that other hosts (pods included) could dial: those bound
 * beyond loopback, with a fixed port.
 */
export function exposedPorts(binds: readonly (string | null)[]): number[] {
  const ports: number[] = [];
  for (const b of binds) {
    if (b === null) continue;
    const { host, port } = parseBind(b);
    if (!isLoopbackHost(host) && port !== 0) ports.push(port);
  }
  return ports;
}
