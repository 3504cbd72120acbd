/**
 * Runs hostnet actions inside a namespace for the integration tests (started with
 * `ip netns exec <ns> node --import tsx driver.ts '<json>'`), because node setup writes sysctls and
 * runs iptables in the namespace the process is in, exactly as ipamd does on an instance.
 * Prints one JSON line: { ok: true, results } or { ok: false, error }.
 */
import { setupEniNetwork, teardownEniNetwork } from '../../../ipamd/hostnet/eni.js';
import { setupNodeNetwork, teardownNodeNetwork } from '../../../ipamd/hostnet/node.js';

type Action =
  | { do: 'setupNode'; cfg: Parameters<typeof setupNodeNetwork>[0] }
  | { do: 'teardownNode' }
  | { do: 'setupEni'; eni: Parameters<typeof setupEniNetwork>[0] }
  | { do: 'teardownEni'; eni: Parameters<typeof teardownEniNetwork>[0] };

const actions = JSON.parse(process.argv[2] ?? '[]') as Action[];
const results: unknown[] = [];
try {
  for (const a of actions) {
    if (a.do === 'setupNode') results.push(await setupNodeNetwork(a.cfg));
    else if (a.do === 'teardownNode') results.push(await teardownNodeNetwork());
    else if (a.do === 'setupEni') results.push(await setupEniNetwork(a.eni, { linkWaitMs: 500 }));
    else if (a.do === 'teardownEni') results.push(await teardownEniNetwork(a.eni));
  }
  process.stdout.write(`${JSON.stringify({ ok: true, results })}\n`);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: (err as Error).message, results })}\n`);
}
