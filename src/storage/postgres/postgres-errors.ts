/**
 * pg's errors in secretd's one vocabulary (errors.ts): UNAVAILABLE when the database is
 * not there right now, an operator's words when it cannot be opened, INTERNAL otherwise
 * (the cause kept, never sent, never a value).
 */
import { SecretdError } from "../../errors.js";

/** SQLSTATE classes that mean "the database is not there right now", not "the request is wrong". */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EPIPE"].includes(code)) return true;
  // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now; 53300: too many connections.
  if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300") return true;
  const msg = typeof e.message === "string" ? e.message : "";
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(msg);
}

/** A pg error as the one vocabulary: UNAVAILABLE when the database is not there, INTERNAL otherwise (cause kept, never sent). */
export function wrap(err: unknown): SecretdError {
  if (err instanceof SecretdError) return err;
  if (isUnavailable(err)) return new SecretdError("UNAVAILABLE", "the database is unreachable", { cause: err });
  if ((err as { code?: unknown }).code === "57014") return new SecretdError("UNAVAILABLE", "the database did not answer in time", { cause: err });
  return new SecretdError("INTERNAL", "database error", { cause: err });
}

/**
 * The server asked for a password (SCRAM, PostgreSQL's default) and the URL carries none:
 * the driver's own words ("SASL: … client password must be a string") say neither.
 */
export function noPasswordError(err: unknown): SecretdError | undefined {
  const message = err instanceof Error ? err.message : "";
  if (!/client password must be a string/.test(message)) return undefined;
  return new SecretdError(
    "FAILED_PRECONDITION",
    "cannot open the PostgreSQL database: the database URL has no password, and the server asks for one: " +
      "give it in the URL (postgres://USER:PASSWORD@HOST/DB), set through SECRETD_DATABASE_URL or --config rather than on the command line",
    { cause: err },
  );
}

/**
 * Why the database could not be opened at start, in words an operator can act on: the
 * driver's and the server's own message (a TLS verification failure, a pg_hba refusal, an
 * unknown database), which name hosts, users and databases but never the password.
 */
export function openError(err: unknown): SecretdError {
  if (err instanceof SecretdError) return err;
  const missing = noPasswordError(err);
  if (missing !== undefined) return missing;
  const message = err instanceof Error ? err.message.slice(0, 500) : "unknown error";
  const code = isUnavailable(err) ? "UNAVAILABLE" : "FAILED_PRECONDITION";
  return new SecretdError(code, `cannot open the PostgreSQL database: ${message}`, { cause: err });
}
