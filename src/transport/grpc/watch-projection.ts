/**
 * WatchProjection: runs the call pipeline like a unary call (call-steps.ts), hands the
 * stream to the watch hub as a WatchSink, and passes every projection it writes through
 * the pipeline's answer steps (ledger admission, an audit event per message, so the trail
 * shows every value that left, hours into a watch). The call ends once: by the server,
 * with its status, or by the client (CANCELLED). The call is node:http2's
 * (h2-server-stream.ts, for the plain case, deadlines included) or grpc-js's (a compressed request).
 */
import { status as Status } from "@grpc/grpc-js";
import type { ProjectSecretsRequest, Projection } from "../../gen/secrets/v1/secrets.js";
import type { WatchHandle, WatchHub } from "../../watch/watch-hub.js";
import type { WatchSink } from "../../watch/watch.js";
import { auditProject } from "./audit-targets.js";
import { requestIdTrailer } from "./call.js";
import { callPipeline, type CallDeps } from "./call-steps.js";
import { decodedRequest, RefusedRequest } from "./decoded-request.js";
import type { ServerStreamCall } from "./adapter/h2-server-stream.js";
import { PipelineCall, type Pipeline } from "./pipeline.js";
import { toStatus } from "./status.js";

export type WatchCall = ServerStreamCall<ProjectSecretsRequest | RefusedRequest, Projection>;

/** What every WatchStream of one handler shares. */
interface Shared {
  readonly hub: WatchHub;
  readonly pipeline: Pipeline;
}

/**
 * One stream, as the hub's sink. A class rather than closures: a watch lives for hours
 * and there may be tens of thousands, so each holds only its call, its pipeline call and two flags.
 */
class WatchStream implements WatchSink {
  #done = false;
  #handle: WatchHandle | undefined;

  constructor(
    readonly shared: Shared,
    readonly call: WatchCall,
    readonly pc: PipelineCall,
  ) {}

  opened(): void {
    if (this.#done) return; // the client left during authentication
    this.#handle = this.shared.hub.open(this.pc.principal!, decodedRequest(this.call.request), this);
  }

  send(message: Projection, flushed: () => void): void {
    if (this.#done) return;
    try {
      this.shared.pipeline.answer(this.pc, message, () => this.call.write(message, flushed));
    } catch (err) {
      // Refused (the ledger: a tenant whose watches are not read is refused more, #27).
      this.#handle?.close();
      this.#handle = undefined;
      this.end(err);
    }
  }

  end(err: unknown): void {
    if (this.#done) return;
    this.#done = true;
    const s = toStatus(err, this.pc.requestId);
    this.shared.pipeline.end(this.pc, { code: s.code, err });
    this.call.emit("error", { code: s.code, details: s.details, metadata: requestIdTrailer(this.pc.requestId) });
  }

  cancelled(): void {
    this.pc.cancel();
    this.#handle?.close();
    this.#handle = undefined;
    if (this.#done) return;
    this.#done = true;
    this.shared.pipeline.end(this.pc, { code: Status.CANCELLED });
  }
}

export function watchProjectionHandler(deps: CallDeps, hub: WatchHub): (call: WatchCall) => void {
  const shared: Shared = { hub, pipeline: callPipeline(deps) };
  return (call) => {
    const req = call.request;
    // The decoder pushed the items (17 slots for one); the request lives as long as the
    // watch, so it keeps an exact-size copy.
    if (!(req instanceof RefusedRequest)) req.items = req.items.slice();
    // A refused request is audited too: the audit step checks every field it reads.
    const pc = new PipelineCall("WatchProjection", call, auditProject as PipelineCall["auditOf"]);
    const stream = new WatchStream(shared, call, pc);
    call.on("cancelled", () => stream.cancelled());
    shared.pipeline
      .open(pc, async () => stream.opened())
      .catch((err: unknown) => stream.end(err));
  };
}
