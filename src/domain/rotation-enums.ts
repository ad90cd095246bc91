/**
 * The wire enums RotationState and Retire as values the domain may load: it may name
 * generated types but never load src/gen (which loads @grpc/grpc-js). `satisfies` keeps
 * every value a member; test/unit/rotation-enums.test.ts checks each name against the
 * generated enum.
 */
import type { Retire as WireRetire, RotationState as WireState } from "../gen/secrets/v1/secrets.js";

export const RotationState = {
  ROTATION_STATE_NONE: 0,
  ROTATION_STATE_WAITING_FOR_ACKS: 1,
  ROTATION_STATE_RETIRING: 2,
  ROTATION_STATE_DONE: 3,
  ROTATION_STATE_TIMED_OUT: 4,
  ROTATION_STATE_FAILED: 5,
  ROTATION_STATE_PENDING: 6,
} as const satisfies Record<string, WireState>;
export type RotationState = WireState;

export const Retire = { RETIRE_AFTER_ACK: 0, RETIRE_IMMEDIATE: 1, RETIRE_NEVER: 2 } as const satisfies Record<string, WireRetire>;
export type Retire = WireRetire;

/** Rollout.state (RotationState), by name. */
export type RotationStateName = "none" | "waiting_for_acks" | "retiring" | "done" | "timed_out" | "failed" | "pending";

const STATE_NAMES: Record<number, RotationStateName> = {
  [RotationState.ROTATION_STATE_WAITING_FOR_ACKS]: "waiting_for_acks",
  [RotationState.ROTATION_STATE_RETIRING]: "retiring",
  [RotationState.ROTATION_STATE_DONE]: "done",
  [RotationState.ROTATION_STATE_TIMED_OUT]: "timed_out",
  [RotationState.ROTATION_STATE_FAILED]: "failed",
  [RotationState.ROTATION_STATE_PENDING]: "pending",
};

/** A rotation record's state by name. */
export function stateName(state: number): RotationStateName {
  return STATE_NAMES[state] ?? "none";
}
