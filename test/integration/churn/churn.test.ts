/**
 * The churn soak in its CI form: each configuration (default, prefix delegation, WARM_IP_TARGET=2 +
 * MINIMUM_IP_TARGET=4) churns for CHURN_SECONDS (default 12) on two m5.large nodes of the local VPC
 * with ipamd kills, CNI process kills and EC2/IMDS faults, then settles and checks the invariants
 * (soak.ts). The report (counts, seed) is printed; CHURN_SEED replays a run's schedule. The long
 * form is bench/churn.ts.
 */
import { describe, expect, it } from 'vitest';
import { bundleMissing } from '../ipamd/fixture.js';
import { seedFrom } from './random.js';
import { CONFIGS, runSoak } from './soak.js';

const seed = seedFrom(process.env.CHURN_SEED);
const seconds = Number(process.env.CHURN_SECONDS ?? 12);

describe.skipIf(bundleMissing())('churn soak (CI form)', () => {
  for (const config of CONFIGS) {
    it(`${config.name}: no address on two pods, every DEL succeeds, nothing left behind`, async () => {
      // Kills and faults come faster than in the long form, so a short run still sees several.
      const { tally, logDir } = await runSoak({
        config,
        seed,
        seconds,
        killEverySeconds: [2, 6],
        faultEverySeconds: [1, 3],
        // EC2 runs at a quarter of its realistic figures here: an ENI attaches well within 10 s.
        leakedEniAgeSeconds: 10,
      });
      console.log(tally.format());
      expect(tally.violations, `ipamd logs kept in ${logDir}`).toEqual([]);
      // The run did churn: pods started and were deleted, and every call kind ran.
      expect(tally.get('pod started')).toBeGreaterThan(0);
      expect(tally.get('pod deleted')).toBeGreaterThan(0);
      for (const kind of ['ADD', 'DEL', 'CHECK', 'GC']) expect(tally.get(`call ${kind}`)).toBeGreaterThan(0);
    }, 240_000);
  }
});
