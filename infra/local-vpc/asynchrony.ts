/**
 * How long the local VPC takes to do what EC2 does asynchronously, one set of figures for the
 * library, the CLI and the demo. Realistic by default; tests that need instant behaviour ask for it
 * by name. Every figure's source is in docs/local-vpc.md ("Asynchrony"); in short:
 *  - attachMs: an attachment stays `attaching` (the guest has no link yet) for about a second after
 *    AttachNetworkInterface returns (the reference CNI's logs, aws/amazon-vpc-cni-k8s#1872, show a
 *    new ENI absent from IMDS right after the attach and present a few hundred ms later);
 *  - detachMs: `detaching` for about two seconds (the reference CNI sleeps 2 s after
 *    DetachNetworkInterface before DeleteNetworkInterface, "it does take awhile for EC2 to detach");
 *  - imdsLagMs: IMDS publishes a change half a second after EC2 made it (same logs: the ENI's
 *    addresses appear in IMDS after the ENI itself);
 *  - consistencyWindowMs: a just-created ENI is NotFound to calls that name it for one second
 *    ("Eventual consistency in the Amazon EC2 API" gives no figure; it advises retrying from "a
 *    couple of seconds"; one second keeps the window real without slowing every test).
 * `timeScale` multiplies every figure (LOCAL_VPC_TIME_SCALE; the integration tests run at 0.25).
 *
 * Exports: Asynchrony, AsynchronyOption, REALISTIC_ASYNCHRONY, INSTANT_ASYNCHRONY, resolveAsynchrony,
 * timeScaleFromEnv.
 */
export interface Asynchrony {
  attachMs: number;
  detachMs: number;
  imdsLagMs: number;
  consistencyWindowMs: number;
}

/** 'realistic' (the default), 'instant' (every figure 0), or realistic with some figures replaced. */
export type AsynchronyOption = 'realistic' | 'instant' | Partial<Asynchrony>;

export const REALISTIC_ASYNCHRONY: Readonly<Asynchrony> = Object.freeze({
  attachMs: 1000,
  detachMs: 2000,
  imdsLagMs: 500,
  consistencyWindowMs: 1000,
});

export const INSTANT_ASYNCHRONY: Readonly<Asynchrony> = Object.freeze({
  attachMs: 0,
  detachMs: 0,
  imdsLagMs: 0,
  consistencyWindowMs: 0,
});

/** LOCAL_VPC_TIME_SCALE as a number > 0 (default 1); throws on anything else. */
export function timeScaleFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.LOCAL_VPC_TIME_SCALE;
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`LOCAL_VPC_TIME_SCALE must be a number > 0 (e.g. 0.25), got '${raw}'`);
  }
  return n;
}

/** The figures in force: the option's, each multiplied by `timeScale`, checked to be >= 0. */
export function resolveAsynchrony(option: AsynchronyOption = 'realistic', timeScale = 1): Asynchrony {
  if (!(timeScale > 0) || !Number.isFinite(timeScale)) {
    throw new Error(`timeScale must be a number > 0, got ${timeScale}`);
  }
  const base =
    option === 'instant'
      ? INSTANT_ASYNCHRONY
      : option === 'realistic'
        ? REALISTIC_ASYNCHRONY
        : { ...REALISTIC_ASYNCHRONY, ...option };
  const out = {} as Asynchrony;
  for (const key of Object.keys(REALISTIC_ASYNCHRONY) as (keyof Asynchrony)[]) {
    const v = base[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new Error(`asynchrony.${key} must be a number of ms >= 0, got ${String(v)}`);
    }
    out[key] = Math.round(v * timeScale);
  }
  return out;
}
