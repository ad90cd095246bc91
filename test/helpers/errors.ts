import { expect } from "vitest";
import { SecretdError } from "../../src/errors.js";

/** Runs fn, expects INVALID_ARGUMENT, returns the message. */
export function invalidMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SecretdError);
    expect((e as SecretdError).code).toBe("INVALID_ARGUMENT");
    return (e as SecretdError).message;
  }
  throw new Error("expected INVALID_ARGUMENT, but nothing was thrown");
}

/** Runs fn, expects a SecretdError (any code), returns it. */
export function secretdErrorOf(fn: () => unknown): SecretdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SecretdError);
    return e as SecretdError;
  }
  throw new Error("expected a SecretdError, but nothing was thrown");
}

/** Awaits a call that must fail; its error (a grpc-js ServiceError for client calls). */
export async function callError<E = import("@grpc/grpc-js").ServiceError>(p: Promise<unknown>): Promise<E> {
  try {
    await p;
  } catch (e) {
    return e as E;
  }
  throw new Error("expected the call to fail");
}
