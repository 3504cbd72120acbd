/**
 * Ec2Transport over a real @aws-sdk/client-ec2 client, so unit tests can drive Ec2Api with
 * aws-sdk-client-mock (ipamd itself speaks the Query protocol without the SDK client).
 */
import * as sdk from '@aws-sdk/client-ec2';
import type { Ec2Action, Ec2Input, Ec2Output, Ec2Transport } from '../../../../ipamd/aws/ec2-wire.js';

export function sdkTransport(client: sdk.EC2Client): Ec2Transport {
  return {
    async send<A extends Ec2Action>(action: A, input: Ec2Input<A>): Promise<Ec2Output<A>> {
      const Command = (sdk as unknown as Record<string, new (i: unknown) => unknown>)[`${action}Command`];
      if (!Command) throw new Error(`the SDK has no ${action}Command`);
      return (await client.send(new Command(input) as never)) as Ec2Output<A>;
    },
  };
}
