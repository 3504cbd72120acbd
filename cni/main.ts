/**
 * aws-cni.mjs: the CNI plugin as a Node program. Reads the process's environment and stdin, runs the
 * call (run.ts), prints the one JSON document and exits. The native shim (native/cni-shim) runs the
 * same code inside ipamd and execs this file only when ipamd cannot be reached.
 */
import { fstatSync, readFileSync, writeSync } from 'node:fs';
import { CniError, Code, describe } from './errors.js';
import { runCni } from './run.js';

/** stdin, or undefined for a terminal (VERSION may come without a config). */
function readStdin(): { stdin?: string; stdinError?: CniError } {
  try {
    if (fstatSync(0).isCharacterDevice()) return {};
    return { stdin: readFileSync(0, 'utf8') };
  } catch (err) {
    return {
      stdinError: new CniError(
        Code.ioFailure,
        'cannot read the network configuration from stdin',
        describe(err),
      ),
    };
  }
}

async function main(): Promise<void> {
  // performance.now() counts from process start: this is Node's own start-up plus the bundle's load.
  const startupMs = Math.round(performance.now() * 10) / 10;
  const out = await runCni({ env: process.env, ...readStdin(), timing: { startupMs } });
  if (out.stdout) writeSync(1, out.stdout);
  // Exit at once: open netlink or socket handles must not keep the pod waiting.
  process.exit(out.exitCode);
}

void main();
