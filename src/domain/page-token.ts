/**
 * Opaque ListSecrets page tokens. A token holds a keyset position (the last name seen),
 * so pages stay correct while secrets are created and deleted between them, and a
 * digest of the query it belongs to, so it cannot be replayed against another query.
 */
import { createHash } from "node:crypto";
import { invalid } from "../errors.js";

interface Position {
  readonly after: string;
}

function digest(query: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(query)).digest("base64url").slice(0, 16);
}

export function encodePageToken(after: string, query: readonly string[]): string {
  return Buffer.from(JSON.stringify({ v: 1, a: after, q: digest(query) })).toString("base64url");
}

/** `rpc` names the call the token came from, for the error message. */
export function decodePageToken(token: string, query: readonly string[], rpc = "ListSecrets"): Position {
  if (token === "") return { after: "" };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalid("page_token", `is not a token returned by ${rpc}`);
  }
  const t = parsed as { v?: unknown; a?: unknown; q?: unknown } | null;
  if (!t || t.v !== 1 || typeof t.a !== "string" || typeof t.q !== "string") {
    throw invalid("page_token", `is not a token returned by ${rpc}`);
  }
  if (t.q !== digest(query)) throw invalid("page_token", "belongs to a different query (mesh, name, filter or selector)");
  return { after: t.a };
}
