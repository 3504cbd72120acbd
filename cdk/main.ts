/**
 * The CDK app: `cd cdk && npx cdk synth -c instanceType=c5.xlarge -c nodeCount=3 -c prefixDelegation=true`
 * (any CDK CLI) or, without the CLI, `npx tsx cdk/main.ts` (writes cdk/cdk.out or $CDK_OUTDIR).
 * Parameters: docs/operations.md#test-cluster.
 */
import { App } from 'aws-cdk-lib';
import { readParams } from './params.js';
import { VpcCniTestClusterStack } from './stack.js';

export function buildApp(
  app: App = new App({ outdir: process.env.CDK_OUTDIR ?? new URL('./cdk.out', import.meta.url).pathname }),
): App {
  const params = readParams((k) => app.node.tryGetContext(k));
  new VpcCniTestClusterStack(app, 'VpcCniTestCluster', {
    params,
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: params.region },
    description: `vpc-cni test cluster (${params.instanceType} x ${params.nodeCount})`,
  });
  return app;
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  try {
    buildApp().synth();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
