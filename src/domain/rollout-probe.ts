/**
 * Has every live consumer of a secret applied a version? The rotation driver asks this
 * RolloutProbe and nothing else. Until acknowledged delivery lands (#30 item 1, the acks'
 * countRollout in rollout.ts), the answer comes from the consumer leases alone: a live
 * consumer has not confirmed anything, so it counts as behind, and a secret nobody
 * watches has converged. Swap this file for countRollout at the merge.
 */
import type { Storage } from "../storage/storage.js";

export interface ProbedConsumer {
  readonly sub: string;
  readonly replica: string;
  readonly consumerId: string;
}

export interface ProbeResult {
  readonly converged: boolean;
  /** Live consumers that have not applied the version. */
  readonly behind: readonly ProbedConsumer[];
  /** Live consumers in all. */
  readonly consumers: number;
}

export type RolloutProbe = (uid: string, version: number) => Promise<ProbeResult>;

export function leaseProbe(storage: Pick<Storage, "listLeases">, now: () => number): RolloutProbe {
  return async (uid) => {
    const live = await storage.listLeases(uid, now());
    return { converged: live.length === 0, behind: live.map((l) => ({ sub: l.sub, replica: l.replica, consumerId: l.watchId })), consumers: live.length };
  };
}
