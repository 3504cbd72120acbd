/**
 * CNI error codes and the error type every handler throws. The dispatcher turns a CniError into the
 * spec's error JSON on stdout and a non-zero exit; anything else becomes code 999 with its message.
 */

/** Codes 1-99 are the spec's; 100+ are this plugin's own. */
export const Code = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  ioFailure: 5,
  decodeFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** STATUS: the plugin cannot serve new ADDs (1.1.0). */
  pluginNotAvailable: 50,
  /** ipamd answered with an error that retrying will not fix, or spoke an unexpected protocol. */
  ipamdError: 100,
  /** No address can be had on this node (max pods, ENI limit, subnet full). */
  noAddress: 101,
  /** Wiring the pod's network failed (the address was released again). */
  setupFailed: 102,
  /** ADD found the interface name already present in the pod's namespace. */
  interfaceExists: 103,
  /** CHECK found the pod's network not as ADD left it. */
  checkFailed: 104,
  /** DEL could not remove something that exists. */
  teardownFailed: 105,
  internal: 999,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    /** Short summary (the spec's `msg`). */
    readonly msg: string,
    /** Longer explanation and what to do (the spec's `details`). */
    readonly details = '',
  ) {
    super(details ? `${msg}: ${details}` : msg);
    this.name = 'CniError';
  }
}

/** The spec's error object. */
export function errorJson(cniVersion: string, err: unknown): Record<string, unknown> {
  const e =
    err instanceof CniError ? err : new CniError(Code.internal, 'internal plugin error', describe(err));
  const out: Record<string, unknown> = { cniVersion, code: e.code, msg: e.msg };
  if (e.details) out.details = e.details;
  return out;
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
