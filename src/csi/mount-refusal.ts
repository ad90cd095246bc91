/**
 * How a failed Mount reaches the Secrets Store CSI Driver (MountContent in its
 * pkg/secrets-store/provider_client.go):
 *
 * - A refusal (the SecretProviderClass, the pod's token or its access is wrong) is an
 *   OK answer carrying `error.code`: the driver fails the volume with "mount request
 *   failed with provider error code <code>" and counts the code in its
 *   node_publish_error metric. Retrying cannot help, so no gRPC error invites it.
 *   Codes: InvalidAttributes, InvalidPath, ResponseTooLarge (our checks), and the
 *   server's refusals by gRPC code name as grpc-go prints them: Unauthenticated,
 *   PermissionDenied, NotFound, InvalidArgument, FailedPrecondition, ResourceExhausted.
 * - secretd unreachable (or too slow) is a gRPC UNAVAILABLE status: the driver's
 *   service config retries exactly that code, and the kubelet retries the volume.
 * - Anything else is INTERNAL; its cause goes to the log, not to the driver.
 *
 * Contract: the message (logged by the provider, and sent for a gRPC status) is a
 * SecretdError's or the server's, which never hold a value or token.
 */
import { status } from "@grpc/grpc-js";
import { SecretdError } from "../errors.js";
import { codeName, isServiceError } from "../client/cli-errors.js";

export type RefusalCode = "InvalidAttributes" | "InvalidPath" | "ResponseTooLarge";

/** A refusal of our own: a SecretdError tagged with the driver-facing code. */
export class MountRefusal extends Error {
  override readonly name = "MountRefusal";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Runs one step of a Mount; its SecretdErrors become refusals with `code` (ResponseTooLarge for a set over the limits). */
export function step<T>(code: RefusalCode, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SecretdError) throw new MountRefusal(err.code === "RESOURCE_EXHAUSTED" ? "ResponseTooLarge" : code, err.message);
    throw err;
  }
}

const SERVER_REFUSALS = new Map<number, string>([
  [status.UNAUTHENTICATED, "Unauthenticated"],
  [status.PERMISSION_DENIED, "PermissionDenied"],
  [status.NOT_FOUND, "NotFound"],
  [status.INVALID_ARGUMENT, "InvalidArgument"],
  [status.FAILED_PRECONDITION, "FailedPrecondition"],
  [status.RESOURCE_EXHAUSTED, "ResourceExhausted"],
]);

const TRANSIENT = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED, status.CANCELLED]);

export type MountFailure =
  | { readonly kind: "refusal"; readonly code: string; readonly message: string }
  | { readonly kind: "status"; readonly code: status; readonly message: string };

export function mountFailure(err: unknown): MountFailure {
  if (err instanceof MountRefusal) return { kind: "refusal", code: err.code, message: err.message };
  // explainCallError's one sentence for a server that cannot be reached.
  if (err instanceof SecretdError && err.code === "UNAVAILABLE") return { kind: "status", code: status.UNAVAILABLE, message: err.message };
  if (isServiceError(err)) {
    const refusal = SERVER_REFUSALS.get(err.code);
    if (refusal !== undefined) return { kind: "refusal", code: refusal, message: `secretd refused: ${err.details}` };
    if (TRANSIENT.has(err.code)) return { kind: "status", code: status.UNAVAILABLE, message: `secretd did not answer (${codeName(err.code)}): ${err.details}` };
  }
  return { kind: "status", code: status.INTERNAL, message: "internal error of the provider (see its log)" };
}
