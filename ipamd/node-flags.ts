/**
 * The Node.js flags every launcher of ipamd passes (systemd unit, DaemonSet, image, local VPC, tests):
 * - --max-semi-space-size=1: a daemon that allocates little trades more (sub-millisecond) young-generation
 *   GCs for a young generation of 2 MB instead of up to 32 MB;
 * - --lite-mode: no optimising compilers (their code pages and feedback vectors are ~5 MB of RSS); ipamd's
 *   work is syscalls and EC2 round trips, and bench/cni.ts shows no measurable latency change.
 * V8 sizes the heap and picks compilers when the process starts, and NODE_OPTIONS may not carry
 * --lite-mode, so launchers pass these on the command line.
 * test/unit/deploy checks every launcher uses exactly this list; bench/ipamd-rss.ts measures the effect.
 */
export const IPAMD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--lite-mode'];
