/**
 * Cold start to a full pool, with the EC2 emulator's latencies set to what EC2 typically shows:
 * EC2 calls and wall time from process start until EC2 holds the target number of addresses.
 *   npx tsx bench/ipamd-coldstart.ts        (needs root and `npm run build`)
 */
import { eventually, Scenario } from '../test/integration/ipamd/fixture.js';

// Typical EC2 API latencies (ms) seen from inside a region.
const LATENCY: Record<string, number> = {
  CreateNetworkInterface: 350,
  AttachNetworkInterface: 450,
  ModifyNetworkInterfaceAttribute: 150,
  AssignPrivateIpAddresses: 200,
  UnassignPrivateIpAddresses: 200,
  DescribeNetworkInterfaces: 120,
  DescribeSubnets: 100,
  DescribeInstanceTypes: 100,
  CreateTags: 120,
  DeleteNetworkInterface: 250,
  DetachNetworkInterface: 300,
};

async function run(instanceType: string, target: number, env: Record<string, string>): Promise<void> {
  const s = await Scenario.create();
  try {
    for (const [action, ms] of Object.entries(LATENCY))
      s.vpc.faults.setLatency(action, { ms, jitterMs: ms / 5 });
    const node = await s.launch(instanceType);
    const caller = `AKID${node.id}`;
    const started = performance.now();
    const ipamd = s.startIpamd(node, { AWS_VPC_K8S_CNI_LOGLEVEL: 'info', ...env });
    await ipamd.waitServing(120_000);
    const serving = performance.now() - started;
    const own = (await eventually(() => ipamd.events().find((e) => e.msg === 'ipamd serving'), 10_000))
      .startupMs;
    // Full = EC2 holds the addresses and ipamd has every ENI set up and in its datastore.
    await eventually(
      () =>
        s.secondaryIpCount(node) >= target &&
        ipamd.events().filter((e) => e.msg === 'ENI attached and ready').length === s.enisOf(node).length - 1,
      120_000,
      `${target} addresses`,
    );
    const full = performance.now() - started;
    const byAction = s.vpc.callLog.summary().byAction;
    const mine = Object.fromEntries(
      Object.keys(byAction)
        .map((a) => [a, s.vpc.callLog.count(a, caller)] as const)
        .filter(([, n]) => n > 0),
    );
    const calls = Object.values(mine).reduce((a, b) => a + b, 0);
    console.log(
      `${instanceType} to ${target} addresses: serving after ${serving.toFixed(0)} ms (${own} ms after node loaded the bundle), full after ${full.toFixed(0)} ms, ` +
        `${calls} EC2 calls, ${s.enisOf(node).length} ENIs`,
    );
    console.log(`  calls: ${JSON.stringify(mine)}`);
    await ipamd.kill('SIGTERM');
  } finally {
    await s.close();
  }
}

if (!process.env.ONLY_BIG) {
  await run('m5.large', 27, { MINIMUM_IP_TARGET: '27', WARM_IP_TARGET: '1' });
  // Whole warm ENIs: every ENI the type allows, each with all its secondary IPs.
  await run('m5.large', 27, { WARM_ENI_TARGET: '3' });
}
await run('m5.4xlarge', 100, { MINIMUM_IP_TARGET: '100', WARM_IP_TARGET: '1' });
