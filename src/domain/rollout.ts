/**
 * Rollout status (#30 item 2): of the live consumers of a secret, how many have acked a
 * projection carrying (at least) a given version of it, and who is behind. A consumer
 * whose lease lapsed is no longer live, so it drops out of the count. GetRollout answers
 * it for the owner, an ADMIN holder or a tenant-admin (like ListConsumers); the rotation
 * driver calls countRollout itself.
 */
import type { GetRolloutRequest } from "../gen/secrets/v1/secrets.js";
import type { LeaseRow, RotationRow, Storage } from "../storage/storage.js";
import { RotationState, stateName, type RotationStateName } from "./rotation-enums.js";
import { invalid, notFound } from "../errors.js";
import { Level } from "./access.js";
import type { Principal } from "./principal.js";
import { scopeFor, type Secrets } from "./secrets.js";
import { validateName } from "./validation.js";

export interface RolloutCount {
  readonly version: number;
  readonly consumers: number;
  readonly applied: number;
  readonly behind: readonly LeaseRow[];
  readonly converged: boolean;
}

/** The version of this secret a consumer's last ack carried; 0 when it acked none (or a projection without it). */
export function appliedVersion(l: LeaseRow): number {
  return l.applied.find((s) => s.uid === l.secretUid)?.version ?? 0;
}

/**
 * "converged": every live consumer of the secret acked a revision whose source version for
 * it is ≥ version (no consumers: converged).
 */
export async function countRollout(storage: Pick<Storage, "listLeases">, uid: string, version: number, now: number = Date.now()): Promise<RolloutCount> {
  const live = await storage.listLeases(uid, now);
  const behind = live.filter((l) => appliedVersion(l) < version);
  return { version, consumers: live.length, applied: live.length - behind.length, behind, converged: behind.length === 0 };
}

export { stateName, type RotationStateName } from "./rotation-enums.js";

/** GetRollout's part from the rotation record (state, previous version, times, detail). */
export interface RotationSummary {
  readonly state: RotationStateName;
  readonly previousVersion: number;
  readonly started?: number;
  readonly finished?: number;
  /** Who never acked, a rotator's outcome: never a value. */
  readonly detail: string;
}

const NO_ROTATION: RotationSummary = { state: "none", previousVersion: 0, detail: "" };

/** The rotation record (rotations.ts) that made `version` of the secret `uid`, or "none". */
export async function rotationFor(storage: Pick<Storage, "readRotation">, uid: string, version: number): Promise<RotationSummary> {
  const r = await storage.readRotation(uid, version);
  return r === undefined ? NO_ROTATION : summaryOf(r);
}

export function summaryOf(r: RotationRow): RotationSummary {
  return {
    state: stateName(r.state),
    previousVersion: r.previousVersion,
    started: r.started,
    ...(r.finished !== undefined ? { finished: r.finished } : {}),
    detail: r.detail,
  };
}

/** A secret's rollout: the count, and the rotation that made the version (rotationFor). */
export interface RolloutStatus extends RolloutCount {
  readonly mesh: string;
  readonly name: string;
  readonly rotation: RotationSummary;
}

export interface RolloutDeps {
  readonly storage: Storage;
  readonly secrets: Secrets;
  readonly now?: () => number;
}

export class Rollouts {
  private readonly now: () => number;

  constructor(private readonly deps: RolloutDeps) {
    this.now = deps.now ?? Date.now;
  }

  async get(p: Principal, req: GetRolloutRequest): Promise<RolloutStatus> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    if (req.version < 0) throw invalid("version", "must not be negative (0 = the current version)");
    const found = await this.deps.storage.readSecret(scope, req.name, 0);
    const { secret } = this.deps.secrets.authorize(p, found, req.name, Level.ADMIN);
    const current = secret.version;
    // A rotator's step makes the next version before it is current: its record (PENDING, or
    // FAILED once discarded) is shown by that number, and, unless discarded, as the latest
    // (promoted since the secret was read here, too).
    const latest = await this.deps.storage.readRotation(secret.uid, 0);
    const ahead = latest !== undefined && latest.version > current ? latest : undefined;
    const version = req.version === 0 ? (ahead !== undefined && ahead.state !== RotationState.ROTATION_STATE_FAILED ? ahead.version : current) : req.version;
    if (version > current && version !== ahead?.version) throw notFound(`version ${version} of secret "${req.name}"`);
    const counted = await countRollout(this.deps.storage, secret.uid, version, this.now());
    // A version not current yet (a rotator's step pending) or never made current (discarded)
    // reached no consumer: not converged, even with nobody watching (`rollout status --wait`).
    const count = version > current ? { ...counted, converged: false } : counted;
    const rotation = version === ahead?.version ? summaryOf(ahead) : await rotationFor(this.deps.storage, secret.uid, version);
    // A scheduled rotation that failed since this version was made is told with the current one (rotation-scheduler.ts).
    const failed = version === current ? await this.deps.storage.readDueRotation(secret.uid) : undefined;
    if (failed !== undefined && failed.failures > 0 && failed.failedAt >= (rotation.started ?? secret.updateTime)) {
      const note = `scheduled rotation failed ${failed.failures} time(s), last at ${new Date(failed.failedAt).toISOString()} (${failed.lastError}); retried at ${new Date(failed.retryAt).toISOString()}`;
      return { mesh: scope.mesh, name: req.name, ...count, rotation: { ...rotation, detail: rotation.detail === "" ? note : `${rotation.detail}; ${note}` } };
    }
    return { mesh: scope.mesh, name: req.name, ...count, rotation };
  }
}
