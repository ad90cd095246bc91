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
