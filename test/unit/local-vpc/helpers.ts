/** Shared fixtures for the EC2/IMDS emulator tests: a model, a running server, a real SDK client. */
import { EC2Client } from '@aws-sdk/client-ec2';
import { Faults } from '../../../infra/local-vpc/ec2/faults.js';
import { type Ec2Server, startEc2Server } from '../../../infra/local-vpc/ec2/server.js';
import { Ec2State } from '../../../infra/local-vpc/ec2/state.js';

export interface Ec2Fixture {
  state: Ec2State;
  server: Ec2Server;
  client: (opts?: { maxAttempts?: number; accessKeyId?: string }) => EC2Client;
  vpcId: string;
  subnetId: string;
  close: () => Promise<void>;
}

/**
 * A VPC 10.0.0.0/16 with one /24 subnet in us-west-2a, and the emulator listening on loopback.
 * `clock` drives the fault model (throttle refills, consistency window) so tests need not sleep.
 */
export async function startFixture(opts: { clock?: () => number } = {}): Promise<Ec2Fixture> {
  const state = new Ec2State();
  const vpc = state.createVpc({ cidr: '10.0.0.0/16' });
  const subnet = state.createSubnet({
    vpcId: vpc.id,
    cidr: '10.0.1.0/24',
    az: 'us-west-2a',
    tags: { Name: 'main' },
  });
  const server = await startEc2Server({ state, faults: new Faults(opts.clock) });
  const clients: EC2Client[] = [];
  return {
    state,
    server,
    vpcId: vpc.id,
    subnetId: subnet.id,
    client: (opts = {}) => {
      const c = new EC2Client({
        endpoint: server.url,
        region: 'us-west-2',
        credentials: { accessKeyId: opts.accessKeyId ?? 'AKIDTEST', secretAccessKey: 'secret' },
        maxAttempts: opts.maxAttempts ?? 1,
      });
      clients.push(c);
      return c;
    },
    close: async () => {
      for (const c of clients) c.destroy();
      await server.close();
    },
  };
}

/** Runs `fn` and returns the error it throws (fails the test if it does not throw). */
export async function errorOf(
  fn: () => Promise<unknown>,
): Promise<{ name: string; message: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await fn();
  } catch (e) {
    return e as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
  }
  throw new Error('expected the call to fail, it succeeded');
}
