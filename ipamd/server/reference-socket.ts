/**
 * The AWS VPC CNI serves a gRPC API (for its network policy agent) on /var/run/aws-node/ipamd.sock;
 * vpc-cni's NDJSON socket has its own name (vpc-cni.sock) so the two never meet on one path. At start
 * ipamd says so when the reference's socket is still served beside ours (the old aws-node still runs)
 * or when ours was configured under the reference's name.
 */
import { lstat } from 'node:fs/promises';
import { connect } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../log.js';

export const REFERENCE_SOCKET_NAME = 'ipamd.sock';

export type ReferenceSocketState = 'none' | 'stale' | 'served';

/** Whether `path` is a socket something listens on ('served'), a leftover ('stale') or absent. */
export async function probeSocket(path: string, timeoutMs = 1000): Promise<ReferenceSocketState> {
  const st = await lstat(path).catch(() => null);
  if (!st?.isSocket()) return 'none';
  return new Promise((resolve) => {
    const sock = connect(path);
    const done = (state: ReferenceSocketState) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(state);
    };
    const timer = setTimeout(() => done('served'), timeoutMs); // a listener too busy to accept is still one
    sock.once('connect', () => done('served'));
    sock.once('error', () => done('stale'));
  });
}

/** Logs one clear line when the reference's socket name is in play; returns what it found. */
export async function checkReferenceSocket(ourPath: string, log: Logger): Promise<ReferenceSocketState> {
  if (basename(ourPath) === REFERENCE_SOCKET_NAME) {
    log.warn(
      { socket: ourPath },
      `IPAMD_SOCKET_PATH uses the name the AWS VPC CNI serves its gRPC API on (${REFERENCE_SOCKET_NAME}); a network policy agent on this node will dial it and fail; use vpc-cni.sock (docs/migration.md)`,
    );
    return 'none';
  }
  const theirs = join(dirname(ourPath), REFERENCE_SOCKET_NAME);
  const state = await probeSocket(theirs);
  if (state === 'served') {
    log.warn(
      { foreign: theirs, socket: ourPath },
      `another program serves ${theirs} (the AWS VPC CNI's ipamd still running on this node?): vpc-cni serves ${ourPath} and does not answer there; remove the old aws-node before vpc-cni manages this node (docs/migration.md)`,
    );
  } else if (state === 'stale') {
    log.info(
      { foreign: theirs },
      `a stale ${REFERENCE_SOCKET_NAME} (nothing listens) is left from the AWS VPC CNI`,
    );
  }
  return state;
}
