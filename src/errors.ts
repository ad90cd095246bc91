/**
 * The one error vocabulary of secretd. Domain, storage, crypto and auth code throw
 * SecretdError; the transport maps it to a status in one place. `message` is sent to
 * the caller, so it must never hold a value, a token or a key; `cause` is only logged.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "RESOURCE_EXHAUSTED"
  | "UNIMPLEMENTED"
  | "DATA_LOSS"
  | "UNAVAILABLE"
  | "INTERNAL";

export class SecretdError extends Error {
  override readonly name = "SecretdError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A request field that breaks a rule: the message names the field and the rule. */
export function invalid(field: string, rule: string): SecretdError {
  return new SecretdError("INVALID_ARGUMENT", `${field}: ${rule}`);
}

export function notFound(what: string): SecretdError {
  return new SecretdError("NOT_FOUND", `${what} not found`);
}

export function denied(why: string): SecretdError {
  return new SecretdError("PERMISSION_DENIED", why);
}

export function unauthenticated(why: string): SecretdError {
  return new SecretdError("UNAUTHENTICATED", why);
}

/** A grant write lost its compare-and-set on the secret's grant set too often (concurrent grant writes). */
export function grantsChanged(): SecretdError {
  return new SecretdError("ABORTED", "the grants of this secret changed concurrently; retry");
}
