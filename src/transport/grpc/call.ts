/**
 * Wraps a plain async handler into a grpc-js unary handler: request id, bearer-token
 * authentication (the only place a Principal is made), one log line per call, and
 * error mapping through toStatus. Handlers never build statuses themselves.
 */
import { randomUUID } from "node:crypto";
import { Metadata, status as Status, type handleUnaryCall, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { bearerToken } from "../../auth/bearer.js";
import type { TokenVerifier } from "../../auth/verifier.js";
import type { Principal } from "../../domain/principal.js";
import type { Logger } from "../../logger.js";
import { decodedRequest } from "./decoded-request.js";
import { toStatus } from "./status.js";

export interface CallContext {
  readonly principal: Principal;
  readonly requestId: string;
}

export interface CallDeps {
  readonly verifier: TokenVerifier;
  readonly logger: Logger;
  /** Refuses answers on connections (or a server) holding too much unread output (connection-guard.ts). */
  readonly guard?: { refusal(peer: string): string | undefined };
}

type Handler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Res>;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestIdOf(md: Metadata): string {
  const v = md.get("x-request-id")[0];
  return typeof v === "string" && REQUEST_ID.test(v) ? v : randomUUID();
}

export async function authenticate(verifier: TokenVerifier, md: Metadata): Promise<Principal> {
  return verifier.verify(bearerToken(md.get("authorization")));
}

/** What the one log line of a call (unary or stream) is made of. */
export interface CallRecord {
  readonly method: string;
  readonly requestId: string;
  readonly started: number;
  principal: Principal | undefined;
  readonly request: unknown;
}

/**
 * Writes the one line of a finished call. It is built from identifiers only (never a
 * value, token or key), so it skips pino's redaction, which cost ~6 us a line. Error lines
 * carry `err` and keep going through the redacting logger.
 */
export function callLogger(deps: CallDeps): (rec: CallRecord, code: Status, err?: unknown) => void {
  const accessLog = deps.logger.child({}, { redact: [] });
  return (rec, code, err) => {
    // mesh and name of the request are logged, never its values; pino leaves out undefined fields.
    const req = rec.request as { mesh?: unknown; name?: unknown } | null;
    const line = {
      method: rec.method,
      tenant: rec.principal?.tenant,
      sub: rec.principal?.sub,
      mesh: typeof req?.mesh === "string" ? req.mesh : undefined,
      name: typeof req?.name === "string" && req.name !== "" ? req.name : undefined,
      code: Status[code],
      ms: Math.round((performance.now() - rec.started) * 100) / 100,
      rid: rec.requestId,
    };
    if (code === Status.INTERNAL || code === Status.DATA_LOSS) deps.logger.error({ ...line, err }, "rpc failed");
    else accessLog.info(line, "rpc");
  };
}

export function newCallRecord(method: string, md: Metadata, request: unknown): CallRecord {
  return { method, requestId: requestIdOf(md), started: performance.now(), principal: undefined, request };
}

export function unary<Req, Res>(deps: CallDeps, method: string, fn: Handler<Req, Res>): handleUnaryCall<Req, Res> {
  const log = callLogger(deps);
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const rec = newCallRecord(method, call.metadata, call.request);
    const requestId = rec.requestId;
    const trailer = new Metadata();
    trailer.set("x-request-id", requestId);
    const finish = (code: Status, err?: unknown): void => log(rec, code, err);

    authenticate(deps.verifier, call.metadata)
      .then((p) => {
        rec.principal = p;
        return fn(decodedRequest(call.request), { principal: p, requestId });
      })
      .then(
        (res) => {
          // Checked when the answer is ready: a client that reads nothing must not make
          // the server hold ever more of them (#16 item 5).
          const refused = deps.guard?.refusal(call.getPeer());
          if (refused !== undefined) {
            finish(Status.RESOURCE_EXHAUSTED);
            callback({ code: Status.RESOURCE_EXHAUSTED, details: refused, metadata: trailer });
            return;
          }
          finish(Status.OK);
          callback(null, res, trailer);
        },
        (err: unknown) => {
          const s = toStatus(err, requestId);
          finish(s.code, err);
          const e: Partial<ServiceError> = { code: s.code, details: s.details, metadata: trailer };
          callback(e);
        },
      );
  };
}
