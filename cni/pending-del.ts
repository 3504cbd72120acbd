/**
 * The plugin's side of lib/protocol/pending-del.ts: when ipamd is away, DEL leaves a note so ipamd
 * releases the attachment's address once it is back.
 */
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../lib/fs/atomic.js';
import { type PendingDel, pendingDelDir, pendingDelFile } from '../lib/protocol/pending-del.js';

export type { PendingDel };

export async function recordPendingDel(socketPath: string, note: PendingDel): Promise<void> {
  await mkdir(pendingDelDir(socketPath), { recursive: true, mode: 0o700 });
  await writeFileAtomic(pendingDelFile(socketPath, note), `${JSON.stringify(note)}\n`, 0o600);
}
