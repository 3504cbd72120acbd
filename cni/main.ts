/**
 * aws-cni.mjs: the CNI plugin as a Node program. Reads the process's environment and stdin, runs the
 * call (run.ts), prints the one JSON document and exits. The native shim (native/cni-shim) runs the
 * same code inside ipamd and execs this file only when ipamd cannot be reached.
 */
import { writeSync } from 'node:fs';
import { runCni } from './run.js';
import { readNetconf } from './stdin.js';

async function main(): Promise<void> {
  // performance.now() counts from process start: this is Node's own start-up plus the bundle's load.
  const startupMs = Math.round(performance.now() * 10) / 10;
  const out = await runCni({ env: process.env, ...readNetconf(), timing: { startupMs } });
  if (out.stdout) writeSync(1, out.stdout);
  // Exit at once: open netlink or socket handles must not keep the pod waiting.
  process.exit(out.exitCode);
}

void main();
