/**
 * The one refusal of a write to a secret that has a rotation running (#30 items 4, 6):
 * FAILED_PRECONDITION naming that rotation (versions, start, state), never a value. A
 * second RotateSecret gets it whatever the state; UpdateSecret and DeleteSecret get it
 * while a rotator's step is PENDING (the pending version holds the next version number,
 * and the rotator may be changing the target system right now).
 */
import { SecretdError } from "../errors.js";
import type { RotationRow, Storage } from "../storage/storage.js";
import { RotationState, stateName } from "./rotation-enums.js";

export function runningRefusal(name: string, r: RotationRow, what = "is already being rotated"): SecretdError {
  return new SecretdError(
    "FAILED_PRECONDITION",
    `secret "${name}" ${what}: the rotation to version ${r.version} (from version ${r.previousVersion}, started ${new Date(r.started).toISOString()}, state ${stateName(r.state)}) is still running`,
  );
}

/** Refuses `doing` (e.g. "cannot be updated") while the secret's latest rotation is PENDING. */
export async function refuseWhilePending(storage: Pick<Storage, "readRotation">, name: string, uid: string, doing: string): Promise<void> {
  const r = await storage.readRotation(uid, 0);
  if (r?.state === RotationState.ROTATION_STATE_PENDING) throw runningRefusal(name, r, `${doing} while a rotator's step is pending (wait for it: GetRollout)`);
}
