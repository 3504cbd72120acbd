import { defineConfig } from 'vitest/config';

// Two projects: unit tests run in parallel anywhere; integration tests need root, the local VPC
// fabric (network namespaces) and the built bundles, so they run one file at a time.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          // EC2's asynchrony is on in every local VPC (infra/local-vpc/asynchrony.ts); a quarter of
          // the realistic figures keeps the windows real and the suite fast.
          env: { LOCAL_VPC_TIME_SCALE: process.env.LOCAL_VPC_TIME_SCALE ?? '0.25' },
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
