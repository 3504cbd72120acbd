/**
 * The internet host's one service: an HTTP echo that answers with the source address it saw.
 * A pod asking it "who am I" learns whether its traffic was SNATed to the node's primary address
 * (anything else is dropped before it gets here, by the host's allow-list).
 */
import http from 'node:http';
import type net from 'node:net';
import { plainIpv4 } from './addresses.js';
import { listenInNetns } from './listeners.js';

export async function startInternetEcho(inetNs: string, port: number): Promise<net.Server> {
  const echo = http.createServer((req, res) => {
    const body = JSON.stringify({ sourceAddress: plainIpv4(req.socket.remoteAddress), path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return listenInNetns(inetNs, port, (socket) => echo.emit('connection', socket));
}
