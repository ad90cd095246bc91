/**
 * The audit event of a previous version's retirement (#30 item 3): no RPC retires it
 * (the rotation driver does, or RotateSecret's own write with IMMEDIATE), so the event is
 * the system principal ROTATION_SUB's, method RETIRE_METHOD, naming the retired version
 * with stage "previous". Its code says how the rotation ended: OK (every live consumer
 * acked, or IMMEDIATE), DEADLINE_EXCEEDED (ack_timeout passed: retired anyway) or UNKNOWN
 * (the rotator's retire hook failed: the reason is in GetRollout's detail, never here).
 */
import { RotationState } from "./rotation-enums.js";
import type { AuditRow, RotationRow } from "../storage/storage.js";

export const ROTATION_SUB = "secretd:rotation";
export const RETIRE_METHOD = "RetireVersion";

function codeOf(state: number): string {
  if (state === RotationState.ROTATION_STATE_TIMED_OUT) return "DEADLINE_EXCEEDED";
  if (state === RotationState.ROTATION_STATE_FAILED) return "UNKNOWN";
  return "OK";
}

/** The event of `r.previousVersion` retired, the rotation ending in `state`. */
export function retireEvent(r: RotationRow, state: number, time: number): AuditRow {
  return {
    tenant: r.tenant,
    time,
    requestId: "",
    method: RETIRE_METHOD,
    sub: ROTATION_SUB,
    mesh: r.mesh,
    name: r.name,
    version: r.previousVersion,
    keys: [],
    code: codeOf(state),
    peer: "",
    stage: "previous",
  };
}
