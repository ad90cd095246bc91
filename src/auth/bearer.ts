/**
 * Extracts the bearer token from the `authorization` metadata (SPEC §2). Messages never
 * echo the value: a caller who sends a bare token without a scheme would see it quoted.
 */
import { unauthenticated } from "../errors.js";

/** Larger tokens are refused before any parsing or hashing work is spent on them. */
export const MAX_TOKEN_LENGTH = 8192;

/** RFC 6750 b64token: the character set of a compact JWS and of any sane bearer token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/** The scheme, one run of whitespace, then the token (RFC 7235 credentials). */
const CREDENTIALS = /^(\S+)\s+(\S+)$/;

export function bearerToken(values: ReadonlyArray<string | Buffer>): string {
  if (values.length === 0) throw unauthenticated("missing authorization metadata: expected \"Bearer <token>\"");
  if (values.length > 1) throw unauthenticated("more than one authorization value");
  const raw = values[0];
  if (raw === undefined) throw unauthenticated("missing authorization metadata: expected \"Bearer <token>\"");
  // An early size bound keeps the regexes below cheap whatever a client sends.
  if (raw.length > MAX_TOKEN_LENGTH + 64) throw unauthenticated("token too large");
  const value = (typeof raw === "string" ? raw : raw.toString("utf8")).trim();
  const m = CREDENTIALS.exec(value);
  if (!m) throw unauthenticated("malformed authorization: expected \"Bearer <token>\"");
  const [, scheme = "", token = ""] = m;
  if (scheme.toLowerCase() !== "bearer") throw unauthenticated("authorization scheme must be Bearer");
  if (token.length > MAX_TOKEN_LENGTH) throw unauthenticated("token too large");
  if (!B64TOKEN.test(token)) throw unauthenticated("malformed bearer token");
  return token;
}
