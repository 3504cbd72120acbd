/**
 * TCP listeners inside a namespace. A socket belongs to the namespace its creating thread was in,
 * so we create it under inNetns. It must be `listen(port)` WITHOUT a host: with a host Node first
 * resolves it through dns.lookup (even for an IP literal), and binds later, after inNetns has
 * switched back, i.e. in the root namespace. The wildcard listener therefore takes connections for
 * every address of the namespace, and `dispatchByLocalAddress` routes them by the address dialled.
 */
import net from 'node:net';
import { inNetns, netnsPath } from '../../../lib/net/netns.js';
import { plainIpv4 } from './addresses.js';

/** Anything that serves an accepted socket, e.g. an http.Server (`emit('connection', socket)`). */
export interface ConnectionSink {
  emit(event: 'connection', socket: net.Socket): boolean;
}

const openSockets = new WeakMap<net.Server, Set<net.Socket>>();

/** Remembers a server's accepted sockets, so closing it does not wait on idle keep-alive clients. */
function track(server: net.Server): net.Server {
  const sockets = new Set<net.Socket>();
  openSockets.set(server, sockets);
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return server;
}

/** Listens on the wildcard address, port `port`, inside namespace `ns`. */
export async function listenInNetns(
  ns: string,
  port: number,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  const server = track(net.createServer(onConnection));
  const listening = new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err) => reject(new Error(`listen on port ${port} in ${ns}: ${err.message}`)));
  });
  inNetns(netnsPath(ns), () => {
    server.listen(port);
  });
  await listening;
  return server;
}

/** A listener on 127.0.0.1 (ephemeral port) in the root namespace. */
export async function listenOnLoopback(onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = track(net.createServer(onConnection));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

export function listeningPort(server: net.Server): number {
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('server is not listening on a TCP port');
  return addr.port;
}

/** A connection handler that passes each socket to the sink registered for the address dialled. */
export function dispatchByLocalAddress(sinks: ReadonlyMap<string, ConnectionSink>): (s: net.Socket) => void {
  return (socket) => {
    const sink = sinks.get(plainIpv4(socket.localAddress) ?? '');
    if (sink) sink.emit('connection', socket);
    else socket.destroy();
  };
}

/** Closes a listener and destroys the connections it accepted that are still open. */
export async function closeServer(server: net.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of openSockets.get(server) ?? []) socket.destroy();
  await closed;
}
