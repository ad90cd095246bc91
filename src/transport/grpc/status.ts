/**
 * The one place errors become gRPC statuses. A SecretdError keeps its code and its
 * (value-free) message; anything else becomes INTERNAL carrying only the request id,
 * which the log line carries too, with the cause.
 */
import { status as Status, type StatusObject } from "@grpc/grpc-js";
import { SecretdError, type ErrorCode } from "../../errors.js";

const CODES: Record<ErrorCode, Status> = {
  INVALID_ARGUMENT: Status.INVALID_ARGUMENT,
  NOT_FOUND: Status.NOT_FOUND,
  ALREADY_EXISTS: Status.ALREADY_EXISTS,
  PERMISSION_DENIED: Status.PERMISSION_DENIED,
  UNAUTHENTICATED: Status.UNAUTHENTICATED,
  FAILED_PRECONDITION: Status.FAILED_PRECONDITION,
  ABORTED: Status.ABORTED,
  RESOURCE_EXHAUSTED: Status.RESOURCE_EXHAUSTED,
  UNIMPLEMENTED: Status.UNIMPLEMENTED,
  DATA_LOSS: Status.DATA_LOSS,
  UNAVAILABLE: Status.UNAVAILABLE,
  INTERNAL: Status.INTERNAL,
};

export function toStatus(err: unknown, requestId: string): Pick<StatusObject, "code" | "details"> {
  if (err instanceof SecretdError && err.code !== "INTERNAL") {
    return { code: CODES[err.code], details: err.message };
  }
  return { code: Status.INTERNAL, details: `internal error (request id ${requestId})` };
}
