// TEMPORARY stand-in until imds/server.ts lands; deleted then.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Ec2State } from '../ec2/state.js';

export function createImdsHandler(opts: {
  state: Ec2State;
  lagMs: number;
  resolveInstance: (remote: string | undefined, req: IncomingMessage) => string | undefined;
}): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const id = opts.resolveInstance(req.socket.remoteAddress, req);
    if (req.method === 'PUT') return void res.end('token');
    const inst = id ? opts.state.getInstance(id) : undefined;
    if (!inst) return void res.writeHead(404).end();
    if (req.url?.endsWith('instance-id')) return void res.end(inst.id);
    if (req.url?.endsWith('mac')) return void res.end(opts.state.getEni(inst.primaryEniId)!.mac);
    res.writeHead(404).end();
  };
}
