/**
 * Version stages (#30 item 3, AWS's AWSCURRENT / AWSPREVIOUS): every secret's latest
 * version is `current`; during a rotation the version it replaced is `previous`, readable
 * by stage (and by its number) until the rotation retires it. Which version is previous
 * is the secret's latest rotation record's, while that record keeps it readable.
 */
import { SecretdError, invalid } from "../errors.js";
import type { Scope, SecretWithVersion, Storage } from "../storage/storage.js";

export type Stage = "current" | "previous";

export const STAGES: readonly Stage[] = ["current", "previous"];

/** A request's stage: "" is current; anything else but the two names is INVALID_ARGUMENT. */
export function parseStage(stage: string, field = "stage"): Stage {
  if (stage === "" || stage === "current") return "current";
  if (stage === "previous") return "previous";
  throw invalid(field, `unknown stage "${stage.slice(0, 64)}" (allowed: ${STAGES.join(", ")})`);
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
