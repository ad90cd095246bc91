/**
 * The steps of every call (pipeline.ts), in the order they run: request id, metrics,
 * authentication (the only place a Principal is made), ledger admission of each answer,
 * audit, and the one log line. Unary calls (call.ts) and streams (watch-projection.ts)
 * run the same list.
 */
import { randomUUID } from "node:crypto";
import type http2 from "node:http2";
import { status as Status } from "@grpc/grpc-js";
import type { AuditSink } from "../../audit/audit-trail.js";
import { bearerToken } from "../../auth/bearer.js";
import type { TokenVerifier } from "../../auth/verifier.js";
import type { SecretdError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { http2StreamOf } from "./adapter/grpc-internals.js";
import { compose, type AuditTarget, type Pipeline, type PipelineCall, type Step } from "./pipeline.js";

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
  /** The time audit events are stamped with (startApp's clock); Date.now when absent. */
  readonly now?: (() => number) | undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's x-request-id when it is a plain identifier, else a fresh one. */
export const requestIdStep: Step = {
  open(call, next) {
    const v = call.transport.metadata.get("x-request-id")[0];
    call.requestId = typeof v === "string" && REQUEST_ID.test(v) ? v : randomUUID();
    return next();
  },
};

export function metricsStep(observer: CallObserver): Step {
  return {
    open(call, next) {
      observer.started(call.method);
      return next();
    },
    end(call, outcome, next) {
      observer.handled(call.method, Status[outcome.code], (performance.now() - call.started) / 1000, call.principal?.tenant);
      next();
    },
  };
}

export function authenticationStep(verifier: TokenVerifier): Step {
  return {
    async open(call, next) {
      // The token is read before the first await: a route's call holds its metadata only then.
      call.principal = await verifier.verify(bearerToken(call.transport.metadata.get("authorization")));
      return next();
    },
  };
}

/**
 * Checked twice (#27), refusing with the ledger's SecretdError: once authenticated, before
 * the handler builds anything (rows read, values decrypted, encoded), so a tenant or
 * connection already past its share of unread answers costs no work; and when an answer
 * is ready, so a tenant whose clients read nothing cannot make the server hold ever more.
 */
export function ledgerStep(ledger: AnswerLedger): Step {
  return {
    open(call, next) {
      const refused = ledger.admit(http2StreamOf(call.transport), call.principal!.tenant);
      if (refused !== undefined) throw refused;
      return next();
    },
    answer(call, _message, next) {
      const stream = http2StreamOf(call.transport);
      const refused = ledger.admit(stream, call.principal!.tenant);
      if (refused !== undefined) throw refused;
      next();
      ledger.wrote(stream);
    },
  };
}

/** Request fields are the caller's: a bad one may be long, so the audit keeps a bounded copy. */
const MAX_AUDIT_FIELD = 256;
const MAX_AUDIT_KEYS = 256;

/** A request that failed to decode may hold anything where a string belongs: such a field is recorded as "". */
function clip(s: unknown): string {
  if (typeof s !== "string") return "";
  return s.length > MAX_AUDIT_FIELD ? s.slice(0, MAX_AUDIT_FIELD) : s;
}

/**
 * Records the call's audit events for one outcome. Only authenticated calls: an event
 * belongs to the verified tenant (the others are in the log and the metrics).
 */
function recordAudit(audit: AuditSink, now: () => number, call: PipelineCall, code: Status, res?: unknown): void {
  const principal = call.principal;
  if (call.auditOf === undefined || principal === undefined) return;
  call.audited = true;
  // The request is the caller's and, when the call failed its wire check, may not even
  // have the declared field types: every field is checked again here.
  let targets: readonly AuditTarget[];
  try {
    targets = call.auditOf(call.request, res);
    if (!Array.isArray(targets)) throw new TypeError("targets");
  } catch {
    targets = [{ mesh: "", name: "", version: 0, keys: [] }]; // a request too malformed to read
  }
  const time = now();
  const codeName = Status[code];
  for (const t of targets) {
    audit.record({
      tenant: principal.tenant,
      time,
      requestId: call.requestId,
      method: call.method,
      sub: principal.sub,
      mesh: clip(t.mesh),
      name: clip(t.name),
      version: Number.isSafeInteger(t.version) ? t.version : 0,
      keys: Array.isArray(t.keys) ? t.keys.slice(0, MAX_AUDIT_KEYS).map(clip) : [],
      code: codeName,
      peer: call.peer,
      stage: clip(t.stage ?? ""),
    });
  }
}

/**
 * Every answer is audited (OK, with what it delivered: a WatchProjection records each
 * message it sends, hours into a watch); a call that ends before its first answer is
 * audited once, with the code it ended with.
 */
export function auditStep(audit: AuditSink, now: () => number = Date.now): Step {
  return {
    answer(call, message, next) {
      recordAudit(audit, now, call, Status.OK, message);
      next();
    },
    end(call, outcome, next) {
      if (!call.audited) recordAudit(audit, now, call, outcome.code);
      next();
    },
  };
}

/**
 * A call's one log line. It is built from identifiers only (never a value, token or key),
 * so it skips pino's redaction, which cost ~6 us a line. Error lines carry `err` and keep
 * going through the redacting logger.
 */
export function loggingStep(logger: Logger): Step {
  const accessLog = logger.child({}, { redact: [] });
  return {
    end(call, outcome, next) {
      // mesh and name of the request are logged, never its values; pino leaves out undefined fields.
      const req = call.request as { mesh?: unknown; name?: unknown } | null;
      const seconds = (performance.now() - call.started) / 1000;
      const line = {
        method: call.method,
        tenant: call.principal?.tenant,
        sub: call.principal?.sub,
        mesh: typeof req?.mesh === "string" ? req.mesh : undefined,
        name: typeof req?.name === "string" && req.name !== "" ? req.name : undefined,
        code: Status[outcome.code],
        ms: Math.round(seconds * 100_000) / 100,
        rid: call.requestId,
      };
      if (outcome.code === Status.INTERNAL || outcome.code === Status.DATA_LOSS) logger.error({ ...line, err: outcome.err }, "rpc failed");
      else accessLog.info(line, "rpc");
      next();
    },
  };
}

/** The steps of every call, from its dependencies. */
export function callPipeline(deps: CallDeps): Pipeline {
  const steps: Step[] = [requestIdStep];
  if (deps.observer) steps.push(metricsStep(deps.observer));
  steps.push(authenticationStep(deps.verifier));
  if (deps.ledger) steps.push(ledgerStep(deps.ledger));
  if (deps.audit) steps.push(auditStep(deps.audit, deps.now));
  steps.push(loggingStep(deps.logger));
  return compose(steps);
}
