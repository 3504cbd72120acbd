/** Entry point of dist/max-pods.mjs. */
import { runMaxPods } from './main.js';

// exitCode, not exit(): a large --all output to a pipe must drain before the process ends.
process.exitCode = await runMaxPods(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
