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
