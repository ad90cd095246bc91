/**
 * Version stages (#30 item 3, AWS's AWSCURRENT / AWSPREVIOUS): every secret's latest
 * version is `current`; during a rotation the version it replaced is `previous`, readable
 * by stage (and by its number) until the rotation retires it. Which version is previous
 * is the secret's latest rotation record's, while that record keeps it readable. While a
 * rotator's step has not succeeded (write-ahead, rotation-step.ts) the new version is
 * `pending`: stored, readable by that stage only (not by its number), not current.
 */
import { SecretdError, invalid } from "../errors.js";
import { RotationState } from "./rotation-enums.js";
import type { Scope, SecretWithVersion, Storage } from "../storage/storage.js";

export type Stage = "current" | "previous" | "pending";

export const STAGES: readonly Stage[] = ["current", "previous", "pending"];

/** A request's stage: "" is current; anything else but the names in `allowed` is INVALID_ARGUMENT. */
export function parseStage(stage: string, field = "stage", allowed: readonly Stage[] = STAGES): Stage {
  const s: string = stage === "" ? "current" : stage;
  const found = allowed.find((a) => a === s);
  if (found !== undefined) return found;
  throw invalid(field, `unknown stage "${stage.slice(0, 64)}" (allowed: ${allowed.join(", ")})`);
}

/** The version the secret's previous stage names, or undefined when none is readable. */
export async function previousVersionOf(storage: Storage, secretUid: string): Promise<number | undefined> {
  const r = await storage.readRotation(secretUid, 0);
  return r?.previousReadable ? r.previousVersion : undefined;
}

/** The stage a version holds: "current" for the latest, "previous" for the one a rotation keeps, else "". */
export async function stageOf(storage: Storage, secret: { uid: string; version: number }, version: number): Promise<Stage | ""> {
  if (version === secret.version) return "current";
  return (await previousVersionOf(storage, secret.uid)) === version ? "previous" : "";
}

/**
 * The row of `name`'s previous version (current metadata and grants, the previous
 * version's keys and payload), read after `current`: NOT_FOUND naming the stage when
 * no rotation keeps one.
 */
export async function readPrevious(storage: Storage, scope: Scope, name: string, current: SecretWithVersion): Promise<SecretWithVersion> {
  const previous = await previousVersionOf(storage, current.secret.uid);
  const row = previous === undefined ? undefined : await storage.readSecret(scope, name, previous);
  if (row?.version === undefined || row.secret.uid !== current.secret.uid) throw new SecretdError("NOT_FOUND", `secret "${name}" has no stage "previous" (no rotation keeps a previous version)`);
  return row;
}

/** The row of `name`'s pending version (a PENDING rotation's), read after `current`: NOT_FOUND naming the stage when none is pending. */
export async function readPending(storage: Storage, scope: Scope, name: string, current: SecretWithVersion): Promise<SecretWithVersion> {
  const r = await storage.readRotation(current.secret.uid, 0);
  const row = r?.state === RotationState.ROTATION_STATE_PENDING ? await storage.readSecret(scope, name, r.version, true) : undefined;
  if (row?.version === undefined || row.secret.uid !== current.secret.uid) throw new SecretdError("NOT_FOUND", `secret "${name}" has no stage "pending" (no rotator step is pending)`);
  return row;
}
