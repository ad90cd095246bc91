/**
 * AckProjection (#30 item 1): a watcher confirms the projection revision it has applied.
 * The ack is checked against the watch's lease row (consumer-leases.ts records each
 * revision with its source versions before the message goes out), so it may land on any
 * worker or replica. Only the watch's own caller acks it: another tenant gets NOT_FOUND
 * (a consumer id tells it nothing, existence included), another sub of the same tenant
 * PERMISSION_DENIED. An ack older than one already recorded keeps the newer (idempotent).
 */
import type { AckProjectionRequest } from "../gen/secrets/v1/secrets.js";
import type { SourceVersion, Storage } from "../storage/storage.js";
import { denied, invalid, SecretdError } from "../errors.js";
import type { Principal } from "./principal.js";
import { validateRevision } from "./validation.js";

/** Revisions a watch's row keeps (consumer-leases.ts): an ack of an older one is refused as never sent. */
export const SENT_KEPT = 8;

/** Watch ids are UUIDs (watch.ts); anything else names no watch. */
const CONSUMER_ID_RE = /^[0-9a-f-]{1,64}$/;

export interface AcksDeps {
  readonly storage: Pick<Storage, "readWatch" | "recordAck">;
  readonly now?: () => number;
}

export class Acks {
  private readonly now: () => number;

  constructor(private readonly deps: AcksDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Records the ack; returns the source versions that revision carried (for the audit trail). */
  async ack(p: Principal, req: AckProjectionRequest): Promise<readonly SourceVersion[]> {
    if (!CONSUMER_ID_RE.test(req.consumerId)) throw invalid("consumer_id", "must be the consumer_id a WatchProjection message carried");
    if (req.revision === "") throw invalid("revision", "must be the revision being acknowledged");
    validateRevision(req.revision, "revision");
    const now = this.now();
    const watch = await this.deps.storage.readWatch(req.consumerId, now);
    if (watch === undefined || watch.tenant !== p.tenant) {
      throw new SecretdError("NOT_FOUND", "no live watch has this consumer_id (it ended, or its lease lapsed); acks name the watch that sent the revision");
    }
    if (watch.sub !== p.sub) throw denied("only the caller that opened the watch may ack it");
    let sent;
    for (let i = watch.sent.length - 1; i >= 0 && sent === undefined; i--) if (watch.sent[i]!.revision === req.revision) sent = watch.sent[i]!;
    if (sent === undefined) {
      throw invalid("revision", `this watch never sent it (or not among its last ${SENT_KEPT} messages)`);
    }
    if (sent.seq > watch.appliedSeq) await this.deps.storage.recordAck(req.consumerId, { seq: sent.seq, revision: sent.revision, time: now, applied: sent.sources });
    return sent.sources;
  }
}
