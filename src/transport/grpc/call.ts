/**
 * Wraps a plain async handler into a grpc-js unary handler: request id, bearer-token
 * authentication (the only place a Principal is made), one log line per call, the
 * call's audit events and metrics, and error mapping through toStatus. Handlers never
 * build statuses themselves.
 */
import { randomUUID } from "node:crypto";
import { Metadata, status as Status, type handleUnaryCall, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { bearerToken } from "../../auth/bearer.js";
import type { AuditSink } from "../../audit/audit-trail.js";
import type { TokenVerifier } from "../../auth/verifier.js";
import type { Principal } from "../../domain/principal.js";
import type { Logger } from "../../logger.js";
import { toStatus } from "./status.js";

export interface CallContext {
  readonly principal: Principal;
  readonly requestId: string;
}

/** What one audit event of a call is about; a call about several secrets gives several. */
export interface AuditTarget {
  readonly mesh: string;
  readonly name: string;
  readonly version: number;
  readonly keys: readonly string[];
}

/** The targets of a call, from its request and, when it succeeded, its response. */
export type AuditOf<Req, Res> = (req: Req, res: Res | undefined) => readonly AuditTarget[];

/** Told about every call (the metrics); `tenant` is undefined before authentication. */
export interface CallObserver {
  started(method: string): void;
  handled(method: string, code: string, seconds: number, tenant: string | undefined): void;
}

export interface CallDeps {
  readonly verifier: TokenVerifier;
  readonly logger: Logger;
  /** Where audit events go; none recorded when absent. */
  readonly audit?: AuditSink | undefined;
  readonly observer?: CallObserver | undefined;
}

/** Request fields are the caller's: a bad one may be long, so the audit keeps a bounded copy. */
const MAX_AUDIT_FIELD = 256;
const MAX_AUDIT_KEYS = 256;

function clip(s: string): string {
  return s.length > MAX_AUDIT_FIELD ? s.slice(0, MAX_AUDIT_FIELD) : s;
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

export function unary<Req, Res>(deps: CallDeps, method: string, fn: Handler<Req, Res>, auditOf?: AuditOf<Req, Res>): handleUnaryCall<Req, Res> {
  const audit = auditOf === undefined ? undefined : deps.audit;
  const observer = deps.observer;
  // The per-call line is built here from identifiers only (never a value, token or key),
  // so it skips pino's redaction, which cost ~6 us a line. Error lines carry `err` and
  // keep going through the redacting logger.
  const accessLog = deps.logger.child({}, { redact: [] });
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const started = performance.now();
    observer?.started(method);
    const requestId = requestIdOf(call.metadata);
    let principal: Principal | undefined;
    const trailer = new Metadata();
    trailer.set("x-request-id", requestId);

    const record = (code: string, res: Res | undefined): void => {
      // Only authenticated calls: an event belongs to the verified tenant. The others are in the log.
      if (audit === undefined || auditOf === undefined || principal === undefined) return;
      let targets: readonly AuditTarget[];
      try {
        targets = auditOf(call.request, res);
      } catch {
        targets = [{ mesh: "", name: "", version: 0, keys: [] }]; // a request too malformed to read
      }
      const time = Date.now();
      const peer = call.getPeer();
      for (const t of targets) {
        audit.record({
          tenant: principal.tenant,
          time,
          requestId,
          method,
          sub: principal.sub,
          mesh: clip(t.mesh),
          name: clip(t.name),
          version: Number.isSafeInteger(t.version) ? t.version : 0,
          keys: t.keys.slice(0, MAX_AUDIT_KEYS).map(clip),
          code,
          peer,
        });
      }
    };

    const finish = (code: Status, err?: unknown, res?: Res): void => {
      // mesh and name of the request are logged, never its values; pino leaves out undefined fields.
      const req = call.request as { mesh?: unknown; name?: unknown } | null;
      const line = {
        method,
        tenant: principal?.tenant,
        sub: principal?.sub,
        mesh: typeof req?.mesh === "string" ? req.mesh : undefined,
        name: typeof req?.name === "string" && req.name !== "" ? req.name : undefined,
        code: Status[code],
        ms: Math.round((performance.now() - started) * 100) / 100,
        rid: requestId,
      };
      if (code === Status.INTERNAL || code === Status.DATA_LOSS) deps.logger.error({ ...line, err }, "rpc failed");
      else accessLog.info(line, "rpc");
      record(line.code, res);
      observer?.handled(method, line.code, (performance.now() - started) / 1000, principal?.tenant);
    };

    authenticate(deps.verifier, call.metadata)
      .then((p) => {
        principal = p;
        return fn(call.request, { principal: p, requestId });
      })
      .then(
        (res) => {
          finish(Status.OK, undefined, res);
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
