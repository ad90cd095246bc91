/**
 * Wraps a plain async handler into a grpc-js unary handler that runs the call pipeline
 * (call-steps.ts: request id, metrics, authentication, ledger admission, audit, log line)
 * and maps every error through toStatus. Handlers never build statuses themselves.
 */
import { Metadata, status as Status, type handleUnaryCall, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { decodedRequest } from "./decoded-request.js";
import { callPipeline, type CallDeps } from "./call-steps.js";
import { PipelineCall, type AuditTarget, type CallContext } from "./pipeline.js";
import { toStatus } from "./status.js";

export type { AnswerLedger, CallDeps, CallObserver } from "./call-steps.js";
export type { AuditTarget, CallContext } from "./pipeline.js";

/** The targets of a call, from its request and, when it succeeded, its response. */
export type AuditOf<Req, Res> = (req: Req, res: Res | undefined) => readonly AuditTarget[];

type Handler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;

/** The trailer every answer carries: the call's request id. */
export function requestIdTrailer(requestId: string): Metadata {
  const trailer = new Metadata();
  trailer.set("x-request-id", requestId);
  return trailer;
}

export function unary<Req, Res>(deps: CallDeps, method: string, fn: Handler<Req, Res>, auditOf?: AuditOf<Req, Res>): handleUnaryCall<Req, Res> {
  const pipeline = callPipeline(deps);
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const pc = new PipelineCall(method, call, auditOf as PipelineCall["auditOf"]);
    call.on("cancelled", () => pc.cancel());
    let answered = false;
    const fail = (err: unknown): void => {
      if (answered) return;
      answered = true;
      const s = toStatus(err, pc.requestId);
      pipeline.end(pc, { code: s.code, err });
      const e: Partial<ServiceError> = { code: s.code, details: s.details, metadata: requestIdTrailer(pc.requestId) };
      callback(e);
    };
    pipeline
      .open(pc, async () => {
        const res = await fn(decodedRequest(call.request), pc.context());
        try {
          pipeline.answer(pc, res, () => {
            answered = true;
            pipeline.end(pc, { code: Status.OK });
            callback(null, res, requestIdTrailer(pc.requestId));
          });
        } catch (err) {
          fail(err);
        }
      })
      .catch(fail);
  };
}
