/**
 * Setting sysctls inside a namespace without a process: /proc/sys/net belongs to the network
 * namespace of the thread that opens the file, so writing under inNetns sets the namespace's value.
 */
import { writeFileSync } from 'node:fs';
import { inNetns, netnsPath } from '../../../lib/net/netns.js';

const KEY_RE = /^net\.[a-z0-9_]+(\.[a-z0-9_-]+)+$/;

export async function setSysctls(
  ns: string,
  values: Readonly<Record<string, string | number>>,
): Promise<void> {
  for (const key of Object.keys(values)) {
    if (!KEY_RE.test(key)) throw new Error(`not a network sysctl this fabric sets: ${JSON.stringify(key)}`);
  }
  inNetns(netnsPath(ns), () => {
    for (const [key, value] of Object.entries(values)) {
      const path = `/proc/sys/${key.replaceAll('.', '/')}`;
      try {
        writeFileSync(path, `${value}\n`);
      } catch (err) {
        throw new Error(`sysctl ${key}=${value} in ${ns}: ${(err as Error).message}`);
      }
    }
  });
}
