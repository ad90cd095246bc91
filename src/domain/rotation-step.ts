/**
 * A rotator's `rotate` step, write-ahead (#30 items 1, 6): RotateSecret with a rotator
 * first records the rotation PENDING with the new version sealed but not current
 * (storage.beginRotation), then runs the step on those sealed values. Success promotes
 * the version to current (the rotation goes on as without a rotator); a permanent
 * refusal discards it (FAILED, the secret unchanged); a transient one (RotatorOutcome
 * `transient`) leaves it PENDING and the step is tried again with exponential backoff
 * (BACKOFF, by the server clock) until it succeeds, is refused, or the rotation's deadline
 * (ack_timeout after it started) passes. A process that died mid-step leaves the record
 * PENDING: whoever claims it next runs the step again on the SAME sealed values, so a
 * rotator's step must be idempotent. One instance per process, shared by RotateSecret
 * and the rotation driver, so the two never run one rotation's step at once here (the
 * row's claim keeps other processes off it).
 */
import type { KeyringSource } from "../crypto/keyring.js";
import type { RotationRow, SecretRow, Storage } from "../storage/storage.js";
import { openData } from "./barrier.js";
import type { Rotator } from "./exec-rotator.js";
import { Retire, RotationState } from "./rotation-enums.js";
import { newEtag, withoutReserved } from "./secrets.js";
import { validateTypedData } from "./secret-types.js";

export const BACKOFF = { firstMs: 1_000, maxMs: 60_000 } as const;

export type StepResult =
  | { readonly kind: "promoted"; readonly rotation: RotationRow }
  | { readonly kind: "refused"; readonly reason: string }
  | { readonly kind: "retrying"; readonly reason: string; readonly at: number }
  /** Not PENDING any more (another process finished it, or the secret is gone). */
  | { readonly kind: "gone" };

export interface RotationStepsDeps {
  readonly storage: Storage;
  readonly keyring: KeyringSource;
  /** The rotators this server has, by RotateSecretRequest.rotator name. */
  readonly rotators: ReadonlyMap<string, Rotator>;
  readonly maxVersions: number;
  readonly now: () => number;
  /** Told of each attempt that did not promote (for the log): identifiers and the reason only. */
  readonly onNotPromoted?: (r: RotationRow, result: StepResult) => void;
}

/** A PENDING rotation's detail while its step is retried: names the attempt, the reason (an error class, never a value) and the next try. */
export function retryingDetail(rotator: string, attempts: number, reason: string, at: number): string {
  return `retrying: the ${rotator} rotator's rotate step failed transiently (attempt ${attempts}: ${reason}); next attempt at ${new Date(at).toISOString()}, with backoff; the current version is unchanged`;
}

const keyOf = (r: { secretUid: string; version: number }): string => `${r.secretUid}/${r.version}`;

/** The record once its version is current: what RotateSecret without a rotator step would have written. */
export function promotedRotation(r: RotationRow, now: number, claim: { driver: string; expire: number }): RotationRow {
  const ackTimeout = r.deadline - r.started;
  if (r.retire === Retire.RETIRE_NEVER) {
    return { ...r, state: RotationState.ROTATION_STATE_DONE, deadline: now, finished: now, previousReadable: true, detail: `version ${r.previousVersion} stays readable as stage "previous" until the next rotation (NEVER)`, driver: "", driverExpire: 0 };
  }
  // IMMEDIATE with a rotator retires through its hook: the driver does it at once (RETIRING).
  const state = r.retire === Retire.RETIRE_IMMEDIATE ? RotationState.ROTATION_STATE_RETIRING : RotationState.ROTATION_STATE_WAITING_FOR_ACKS;
  return { ...r, state, deadline: state === RotationState.ROTATION_STATE_RETIRING ? now : now + ackTimeout, finished: undefined, previousReadable: true, detail: "", driver: claim.driver, driverExpire: claim.expire };
}

export class RotationSteps {
  private readonly backoff = new Map<string, { attempts: number; at: number }>();
  private readonly inFlight = new Set<string>();

  constructor(private readonly deps: RotationStepsDeps) {}

  /** The rotator of that name this server has. */
  rotator(name: string): Rotator | undefined {
    return this.deps.rotators.get(name);
  }

  /** Whether this process should try the step now: not running here, and its backoff passed. */
  due(r: RotationRow): boolean {
    const b = this.backoff.get(keyOf(r));
    return !this.inFlight.has(keyOf(r)) && (b === undefined || this.deps.now() >= b.at);
  }

  /** Runs the step of a PENDING rotation the caller holds the claim on (`claim`), and promotes, discards or schedules a retry. */
  async run(r: RotationRow, claim: { driver: string; expire: number }): Promise<StepResult> {
    const key = keyOf(r);
    if (this.inFlight.has(key)) return { kind: "retrying", reason: "the step is running", at: this.deps.now() };
    this.inFlight.add(key);
    try {
      const result = await this.attempt(r, claim);
      if (result.kind !== "retrying") this.backoff.delete(key);
      if (result.kind !== "promoted") this.deps.onNotPromoted?.(r, result);
      return result;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private async attempt(r: RotationRow, claim: { driver: string; expire: number }): Promise<StepResult> {
    const { storage, now } = this.deps;
    const row = await storage.readSecret({ tenant: r.tenant, mesh: r.mesh }, r.name, r.version, true);
    if (row?.version === undefined || row.secret.uid !== r.secretUid) return { kind: "gone" };
    if (now() >= r.deadline) return this.discard(r, `the ${r.rotator} rotator's rotate step did not succeed within ack_timeout (${Math.round((r.deadline - r.started) / 1000)}s); version ${r.version} of secret "${r.name}" discarded, the secret is unchanged`);
    const rotator = this.deps.rotators.get(r.rotator);
    if (rotator === undefined) return this.retry(r, `this server has no ${r.rotator} rotator`);
    const data = openData(this.deps.keyring, row.secret, row.version);
    try {
      const outcome = await rotator("rotate", { tenant: r.tenant, mesh: r.mesh, name: r.name, version: r.version, annotations: row.secret.annotations }, data);
      if (!outcome.ok) {
        if (outcome.transient === true) return this.retry(r, outcome.reason);
        return this.discard(r, `the ${r.rotator} rotator refused version ${r.version} of secret "${r.name}" (${outcome.reason}): the secret is unchanged`);
      }
      const secret = row.secret;
      const t = now();
      const next: SecretRow = {
        ...secret,
        annotations: { ...withoutReserved(secret.annotations), ...validateTypedData(secret.type, data).annotations },
        version: r.version,
        etag: newEtag(),
        keys: row.version.keys,
        updateTime: t,
      };
      const rotation = promotedRotation(r, t, claim);
      const promoted = await storage.promoteRotation(next, secret.etag, Math.max(2, this.deps.maxVersions), rotation);
      if (promoted === "ok") return { kind: "promoted", rotation };
      if (promoted === "conflict") return this.retry(r, "the secret changed while the step ran");
      return { kind: "gone" };
    } finally {
      for (const v of data.values()) v.fill(0);
    }
  }

  /** Schedules the next attempt, and notes it on the record (GetRollout's detail, for every process). */
  private async retry(r: RotationRow, reason: string): Promise<StepResult> {
    const key = keyOf(r);
    const attempts = (this.backoff.get(key)?.attempts ?? 0) + 1;
    const at = this.deps.now() + Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** (attempts - 1));
    this.backoff.set(key, { attempts, at });
    await this.deps.storage.noteRotation(r.secretUid, r.version, retryingDetail(r.rotator, attempts, reason, at));
    return { kind: "retrying", reason, at };
  }

  private async discard(r: RotationRow, reason: string): Promise<StepResult> {
    await this.deps.storage.discardRotation(r.secretUid, r.version, this.deps.now(), reason);
    return { kind: "refused", reason };
  }
}
