/**
 * WatchProjection over grpc-js: authenticates like a unary call, hands the stream to the
 * watch hub as a WatchSink, and writes the call's one log line when the stream ends (by
 * the server, with its status, or by the client: CANCELLED). Its audit events are
 * recorded once: when the first projection is written (OK, with the versions it read), or
 * when the stream ends before that (the code it ended with).
 */
import { Metadata, status as Status, type handleServerStreamingCall } from "@grpc/grpc-js";
import type { ProjectSecretsRequest, Projection } from "../../gen/secrets/v1/secrets.js";
import type { WatchHub } from "../../watch/watch-hub.js";
import { auditProject } from "./audit-targets.js";
import { auditCall, authenticate, callLogger, newCallRecord, type CallDeps } from "./call.js";
import { toStatus } from "./status.js";

export function watchProjectionHandler(deps: CallDeps, hub: WatchHub): handleServerStreamingCall<ProjectSecretsRequest, Projection> {
  const log = callLogger(deps);
  return (call) => {
    const rec = newCallRecord(deps, "WatchProjection", call, (res) => auditProject(call.request, res as Projection | undefined));
    let done = false;
    let close: (() => void) | undefined;
    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      const s = toStatus(err, rec.requestId);
      log(rec, s.code, err);
      const trailer = new Metadata();
      trailer.set("x-request-id", rec.requestId);
      call.emit("error", { code: s.code, details: s.details, metadata: trailer });
    };
    call.on("cancelled", () => {
      close?.();
      if (done) return;
      done = true;
      log(rec, Status.CANCELLED);
    });
    authenticate(deps.verifier, call.metadata)
      .then((p) => {
        rec.principal = p;
        if (done) return; // the client left during authentication
        const handle = hub.open(p, call.request, {
          send: (message, flushed) => {
            if (done) return;
            auditCall(deps, rec, Status.OK, message);
            call.write(message, () => flushed());
          },
          end: fail,
        });
        close = handle.close;
      })
      .catch(fail);
  };
}
