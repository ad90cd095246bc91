/**
 * Has every live consumer of a secret applied a version? The rotation driver asks this
 * RolloutProbe and nothing else: the acks' countRollout (rollout.ts) over the consumer
 * leases, where a consumer has applied a version once it acked a revision carrying it
 * (or a later one), and a secret nobody watches has converged.
 */
import type { LeaseRow, Storage } from "../storage/storage.js";
import { countRollout, type RolloutCount } from "./rollout.js";

/** Who is behind, as the driver names them in a timed-out rotation's detail. */
export type ProbedConsumer = Pick<LeaseRow, "sub" | "replica" | "watchId">;

export type RolloutProbe = (uid: string, version: number) => Promise<RolloutCount>;

export function leaseProbe(storage: Pick<Storage, "listLeases">, now: () => number): RolloutProbe {
  return (uid, version) => countRollout(storage, uid, version, now());
}
