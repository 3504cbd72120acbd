/**
 * Socket round trips of the running daemon: add and del latency (each persisted before the answer),
 * sequential and 16 at a time. Needs root and `npm run build`.
 *   npx tsx bench/ipamd-socket.ts
 */
import { Scenario } from '../test/integration/ipamd/fixture.js';

function pct(xs: number[], p: number): string {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!.toFixed(2);
}

const s = await Scenario.create();
try {
  const node = await s.launch('m5.large');
  const ipamd = s.startIpamd(node, {
    AWS_VPC_K8S_CNI_LOGLEVEL: 'warn',
    WARM_IP_TARGET: '20',
    IP_COOLDOWN_PERIOD: '0',
  });
  await ipamd.waitServing();
  await new Promise((r) => setTimeout(r, 3000)); // let the pool reach its target
  const adds: number[] = [];
  const dels: number[] = [];
  for (let i = 0; i < 300; i++) {
    let t = performance.now();
    const a = await ipamd.add(`b${i % 10}`);
    adds.push(performance.now() - t);
    if (!a.ok) throw new Error(JSON.stringify(a.error));
    t = performance.now();
    await ipamd.del(`b${i % 10}`);
    dels.push(performance.now() - t);
  }
  console.log(`sequential add: p50 ${pct(adds, 50)} ms, p99 ${pct(adds, 99)} ms (n=${adds.length})`);
  console.log(`sequential del: p50 ${pct(dels, 50)} ms, p99 ${pct(dels, 99)} ms (n=${dels.length})`);
  const started = performance.now();
  const batch = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const t = performance.now();
      const r = await ipamd.add(`c${i}`);
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      return performance.now() - t;
    }),
  );
  console.log(
    `16 concurrent adds: all answered in ${(performance.now() - started).toFixed(1)} ms, p50 ${pct(batch, 50)} ms (checkpoint writes shared)`,
  );
  await ipamd.kill('SIGTERM');
} finally {
  await s.close();
}
