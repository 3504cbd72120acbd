/**
 * Runs hostnet actions inside a namespace for the integration tests, started once with
 * `ip netns exec <ns> node --import tsx driver.ts`, because node setup writes sysctls and runs
 * iptables in the namespace the process is in, exactly as ipamd does on an instance.
 * Reads one JSON array of actions per stdin line; answers each with one JSON line:
 * { ok: true, results } or { ok: false, error, results }.
 */
import { createInterface } from 'node:readline';
import { setupEniNetwork, teardownEniNetwork } from '../../../ipamd/hostnet/eni.js';
import { setupNodeNetwork, teardownNodeNetwork } from '../../../ipamd/hostnet/node.js';

type Action =
  | { do: 'setupNode'; cfg: Parameters<typeof setupNodeNetwork>[0] }
  | { do: 'teardownNode' }
  | { do: 'setupEni'; eni: Parameters<typeof setupEniNetwork>[0] }
  | { do: 'teardownEni'; eni: Parameters<typeof teardownEniNetwork>[0] }
  | { do: 'parallel'; actions: Action[] };

function run(a: Action): Promise<unknown> {
  if (a.do === 'setupNode') return setupNodeNetwork(a.cfg);
  if (a.do === 'teardownNode') return teardownNodeNetwork();
  if (a.do === 'setupEni') return setupEniNetwork(a.eni, { linkWaitMs: 500 });
  if (a.do === 'teardownEni') return teardownEniNetwork(a.eni);
  return Promise.all(a.actions.map(run));
}

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of createInterface({ input: process.stdin })) {
  const results: unknown[] = [];
  try {
    for (const a of JSON.parse(line) as Action[]) results.push(await run(a));
    process.stdout.write(`${JSON.stringify({ ok: true, results })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: (err as Error).message, results })}\n`);
  }
}
