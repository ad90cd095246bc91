/**
 * A secret value as text: valid UTF-8 is text, anything else stays bytes (the CLI's
 * renderers mark them as binary; an environment variable refuses them).
 */
import { SecretdError } from "../errors.js";

/** Text when the bytes are valid UTF-8, else a (plain) Uint8Array the renderers mark as binary. */
export type ShownValue = string | Uint8Array;

const UTF8 = new TextDecoder("utf-8", { fatal: true });

export function showValue(bytes: Uint8Array): ShownValue {
  try {
    return UTF8.decode(bytes);
  } catch {
    return new Uint8Array(bytes);
  }
}

/** A value as environment text: UTF-8 without NUL, else FAILED_PRECONDITION naming `what`. */
export function envValue(value: Uint8Array, what: string, hint = ""): string {
  const shown = showValue(value);
  if (typeof shown !== "string" || shown.includes("\0")) {
    throw new SecretdError("FAILED_PRECONDITION", `${what}: the value is binary and cannot be an environment variable${hint}`);
  }
  return shown;
}
