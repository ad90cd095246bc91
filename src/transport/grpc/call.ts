/**
 * Wraps a plain async handler into a grpc-js unary handler: request id, bearer-token
 * authentication (the only place a Principal is made), one call record per call (unary
 * or stream) that ends in one log line, the call's audit events (once) and its metrics,
 * and error mapping through toStatus. Handlers never build statuses themselves.
 */
import { randomUUID } from "node:crypto";
import type http2 from "node:http2";
import { Metadata, status as Status, type handleUnaryCall, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { bearerToken } from "../../auth/bearer.js";
import type { AuditSink } from "../../audit/audit-trail.js";
import type { TokenVerifier } from "../../auth/verifier.js";
import type { SecretdError } from "../../errors.js";
import type { Principal } from "../../domain/principal.js";
import type { Logger } from "../../logger.js";
import { decodedRequest } from "./decoded-request.js";
import { http2StreamOf } from "./grpc-internals.js";
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

/** The resource ledger's outbound side (resource-ledger.ts), as calls use it. */
export interface AnswerLedger {
  /** Why an answer of `tenant` may not be written on `stream` now (RESOURCE_EXHAUSTED), or undefined. */
  admit(stream: http2.ServerHttp2Stream, tenant: string): SecretdError | undefined;
  /** An answer was written on `stream`. */
  wrote(stream: http2.ServerHttp2Stream): void;
}

export interface CallDeps {
  readonly verifier: TokenVerifier;
  readonly logger: Logger;
  /** Charges answers to their tenant and connection, and refuses them past a bound. */
  readonly ledger?: AnswerLedger | undefined;
  /** Where audit events go; none recorded when absent. */
  readonly audit?: AuditSink | undefined;
  readonly observer?: CallObserver | undefined;
}

/** Request fields are the caller's: a bad one may be long, so the audit keeps a bounded copy. */
const MAX_AUDIT_FIELD = 256;
const MAX_AUDIT_KEYS = 256;

/** A request that failed to decode may hold anything where a string belongs: such a field is recorded as "". */
function clip(s: unknown): string {
  if (typeof s !== "string") return "";
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

/** What a finished call (unary or stream) is logged, audited and measured from. */
export interface CallRecord {
  readonly method: string;
  readonly requestId: string;
  readonly started: number;
  principal: Principal | undefined;
  readonly request: unknown;
  readonly peer: string;
  /** The call's audit targets from its response (undefined when it failed); no audit when absent. */
  readonly auditOf: ((res: unknown) => readonly AuditTarget[]) | undefined;
  /** Set once the call's events are recorded: a call is audited once. */
  audited: boolean;
}

/** The parts of a grpc-js call (unary or stream) a record is made from. */
export interface IncomingCall {
  readonly metadata: Metadata;
  readonly request: unknown;
  getPeer(): string;
}

/** Starts a call's record (and counts it started). */
export function newCallRecord(
  deps: CallDeps,
  method: string,
  call: IncomingCall,
  auditOf?: (res: unknown) => readonly AuditTarget[],
): CallRecord {
  deps.observer?.started(method);
  return {
    method,
    requestId: requestIdOf(call.metadata),
    started: performance.now(),
    principal: undefined,
    request: call.request,
    peer: call.getPeer(),
    auditOf: deps.audit === undefined ? undefined : auditOf,
    audited: false,
  };
}

/**
 * Records the call's audit events with its outcome, once: a stream is audited when it
 * first answers or when it ends, whichever comes first. Only authenticated calls: an
 * event belongs to the verified tenant (the others are in the log and the metrics).
 */
export function auditCall(deps: CallDeps, rec: CallRecord, code: Status, res?: unknown): void {
  if (rec.audited) return;
  recordAudit(deps, rec, code, res);
}

/**
 * Records the call's audit events for one answer, however many it already recorded: a
 * WatchProjection records one per message it sends (each delivers every value again).
 */
export function recordAudit(deps: CallDeps, rec: CallRecord, code: Status, res?: unknown): void {
  const audit = deps.audit;
  const principal = rec.principal;
  if (audit === undefined || rec.auditOf === undefined || principal === undefined) return;
  rec.audited = true;
  // The request is the caller's and, when the call failed its wire check, may not even
  // have the declared field types: every field is checked again here.
  let targets: readonly AuditTarget[];
  try {
    targets = rec.auditOf(res);
    if (!Array.isArray(targets)) throw new TypeError("targets");
  } catch {
    targets = [{ mesh: "", name: "", version: 0, keys: [] }]; // a request too malformed to read
  }
  const time = Date.now();
  const codeName = Status[code];
  for (const t of targets) {
    audit.record({
      tenant: principal.tenant,
      time,
      requestId: rec.requestId,
      method: rec.method,
      sub: principal.sub,
      mesh: clip(t.mesh),
      name: clip(t.name),
      version: Number.isSafeInteger(t.version) ? t.version : 0,
      keys: Array.isArray(t.keys) ? t.keys.slice(0, MAX_AUDIT_KEYS).map(clip) : [],
      code: codeName,
      peer: rec.peer,
    });
  }
}

/**
 * Finishes a call: its one log line, its audit events (unless already recorded) and its
 * metrics. The line is built from identifiers only (never a value, token or key), so it
 * skips pino's redaction, which cost ~6 us a line. Error lines carry `err` and keep going
 * through the redacting logger.
 */
export function callLogger(deps: CallDeps): (rec: CallRecord, code: Status, err?: unknown, res?: unknown) => void {
  const accessLog = deps.logger.child({}, { redact: [] });
  const observer = deps.observer;
  return (rec, code, err, res) => {
    // mesh and name of the request are logged, never its values; pino leaves out undefined fields.
    const req = rec.request as { mesh?: unknown; name?: unknown } | null;
    const seconds = (performance.now() - rec.started) / 1000;
    const line = {
      method: rec.method,
      tenant: rec.principal?.tenant,
      sub: rec.principal?.sub,
      mesh: typeof req?.mesh === "string" ? req.mesh : undefined,
      name: typeof req?.name === "string" && req.name !== "" ? req.name : undefined,
      code: Status[code],
      ms: Math.round(seconds * 100_000) / 100,
      rid: rec.requestId,
    };
    if (code === Status.INTERNAL || code === Status.DATA_LOSS) deps.logger.error({ ...line, err }, "rpc failed");
    else accessLog.info(line, "rpc");
    auditCall(deps, rec, code, res);
    observer?.handled(rec.method, line.code, seconds, rec.principal?.tenant);
  };
}

export function unary<Req, Res>(deps: CallDeps, method: string, fn: Handler<Req, Res>, auditOf?: AuditOf<Req, Res>): handleUnaryCall<Req, Res> {
  const log = callLogger(deps);
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const targets = auditOf === undefined ? undefined : (res: unknown) => auditOf(call.request, res as Res | undefined);
    const rec = newCallRecord(deps, method, call, targets);
    const requestId = rec.requestId;
    const trailer = new Metadata();
    trailer.set("x-request-id", requestId);

    const fail = (err: unknown): void => {
      const s = toStatus(err, requestId);
      log(rec, s.code, err);
      const e: Partial<ServiceError> = { code: s.code, details: s.details, metadata: trailer };
      callback(e);
    };
    // Whether the ledger lets this tenant's answer out on this call's stream now (#27).
    const ledger = deps.ledger;
    let stream: http2.ServerHttp2Stream | undefined;
    const refusal = (): unknown => {
      if (ledger === undefined) return undefined;
      try {
        stream = http2StreamOf(call);
        return ledger.admit(stream, rec.principal!.tenant);
      } catch (err) {
        return err;
      }
    };
    authenticate(deps.verifier, call.metadata)
      .then((p) => {
        rec.principal = p;
        // Asked before the answer is built (rows read, values decrypted, encoded): a tenant
        // or connection already past its share of unread answers costs no work (#27).
        const early = refusal();
        if (early !== undefined) throw early;
        return fn(decodedRequest(call.request), { principal: p, requestId });
      })
      .then((res) => {
        // And again when the answer is ready: a tenant whose clients read nothing must not
        // make the server hold ever more of them.
        const refused = refusal();
        if (refused !== undefined) {
          fail(refused);
          return;
        }
        log(rec, Status.OK, undefined, res);
        callback(null, res, trailer);
        if (stream !== undefined) ledger!.wrote(stream);
      }, fail);
  };
}
