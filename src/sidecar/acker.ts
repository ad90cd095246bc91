/**
 * Acks an applied projection (AckProjection, SPEC §8): the sidecar after the `..data`
 * swap and a successful --exec-on-change / --signal-pid, `run --restart-on-change` once
 * the new child stayed up --ack-after. Through the client's current channel (the server
 * that sent it, usually), with the token the watch uses. A failed ack is logged and
 * dropped: the next applied revision acks again, and rollout status shows it behind.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { Projection, SecretServiceClient } from "../gen/secrets/v1/secrets.js";
import { codeName } from "./watch-loop.js";
import type { TokenSource } from "./token-source.js";

const ACK_TIMEOUT_MS = 10_000;

export class Acker {
  constructor(
    private readonly client: () => SecretServiceClient,
    private readonly token: TokenSource,
    private readonly log: Logger,
  ) {}

  /** Whether this message can be acked (a WatchProjection message with sources). */
  static ackable(p: Projection): boolean {
    return p.consumerId !== "" && p.sources.length > 0;
  }

  ack(p: Projection): Promise<void> {
    if (!Acker.ackable(p)) return Promise.resolve();
    const md = new Metadata();
    try {
      md.set("authorization", `Bearer ${this.token.read()}`);
    } catch {
      this.log.warn({ revision: p.revision }, "cannot read the token: not acking");
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.client().ackProjection({ consumerId: p.consumerId, revision: p.revision }, md, { deadline: Date.now() + ACK_TIMEOUT_MS }, (err: ServiceError | null) => {
        if (err) this.log.warn({ revision: p.revision, code: codeName(err.code), details: err.details }, "ack failed");
        else this.log.info({ revision: p.revision }, "acked");
        resolve();
      });
    });
  }
}
