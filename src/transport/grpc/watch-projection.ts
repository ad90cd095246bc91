/**
 * WatchProjection: authenticates like a unary call, hands the stream to the
 * watch hub as a WatchSink, and writes the call's one log line when the stream ends (by
 * the server, with its status, or by the client: CANCELLED). Its audit events are
 * recorded for every projection it writes (OK, with the versions and keys delivered, so
 * the trail shows every value that left, hours into a watch), or once when the stream
 * ends before its first (the code it ended with). The call is node:http2's
 * (h2-server-stream.ts, for the plain case) or grpc-js's (a deadline, a compressed request).
 */
import type http2 from "node:http2";
import { Metadata, status as Status } from "@grpc/grpc-js";
import type { ProjectSecretsRequest, Projection } from "../../gen/secrets/v1/secrets.js";
import type { Principal } from "../../domain/principal.js";
import type { WatchHandle, WatchHub } from "../../watch/watch-hub.js";
import type { WatchSink } from "../../watch/watch.js";
import { auditProject } from "./audit-targets.js";
import { authenticate, callLogger, newCallRecord, recordAudit, type CallDeps, type CallRecord } from "./call.js";
import { decodedRequest, type RefusedRequest } from "./decoded-request.js";
import { http2StreamOf } from "./grpc-internals.js";
import type { ServerStreamCall } from "./h2-server-stream.js";
import { toStatus } from "./status.js";

export type WatchCall = ServerStreamCall<ProjectSecretsRequest | RefusedRequest, Projection>;

/** What every WatchStream of one handler shares. */
interface Shared {
  readonly deps: CallDeps;
  readonly hub: WatchHub;
  readonly log: ReturnType<typeof callLogger>;
}

/**
 * One stream, as the hub's sink. A class rather than closures: a watch lives for hours
 * and there may be tens of thousands, so each holds only its call, its record and two flags.
 */
class WatchStream implements WatchSink {
  #done = false;
  #handle: WatchHandle | undefined;

  constructor(
    readonly shared: Shared,
    readonly call: WatchCall,
    readonly rec: CallRecord,
  ) {}

  opened(p: Principal): void {
    this.rec.principal = p;
    if (this.#done) return; // the client left during authentication
    this.#handle = this.shared.hub.open(p, decodedRequest(this.call.request), this);
  }

  send(message: Projection, flushed: () => void): void {
    if (this.#done) return;
    // Charged like a unary answer: a tenant whose watches are not read is refused more (#27).
    const ledger = this.shared.deps.ledger;
    let stream: http2.ServerHttp2Stream | undefined;
    if (ledger !== undefined) {
      let refused: unknown;
      try {
        stream = http2StreamOf(this.call);
        refused = ledger.admit(stream, this.rec.principal!.tenant);
      } catch (err) {
        refused = err;
      }
      if (refused !== undefined) {
        this.#handle?.close();
        this.#handle = undefined;
        this.end(refused);
        return;
      }
    }
    recordAudit(this.shared.deps, this.rec, Status.OK, message);
    this.call.write(message, flushed);
    if (stream !== undefined) ledger!.wrote(stream);
  }

  end(err: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const s = toStatus(err, this.rec.requestId);
    this.shared.log(this.rec, s.code, err);
    const trailer = new Metadata();
    trailer.set("x-request-id", this.rec.requestId);
    this.call.emit("error", { code: s.code, details: s.details, metadata: trailer });
  }

  cancelled(): void {
    this.#handle?.close();
    this.#handle = undefined;
    if (this.#done) return;
    this.#done = true;
    this.shared.log(this.rec, Status.CANCELLED);
  }
}

export function watchProjectionHandler(deps: CallDeps, hub: WatchHub): (call: WatchCall) => void {
  const shared: Shared = { deps, hub, log: callLogger(deps) };
  return (call) => {
    // A refused request is audited too: auditCall checks every field it reads.
    const rec = newCallRecord(deps, "WatchProjection", call, (res) => auditProject(call.request as ProjectSecretsRequest, res as Projection | undefined));
    const stream = new WatchStream(shared, call, rec);
    call.on("cancelled", () => stream.cancelled());
    authenticate(deps.verifier, call.metadata)
      .then((p) => stream.opened(p))
      .catch((err: unknown) => stream.end(err));
  };
}
