/**
 * Additional authenticated data that binds a sealed version to its row. The encoding
 * is injective: a fixed label, every string length-prefixed (uint32 BE) in a fixed
 * order, the version as 8-byte big-endian. So any change to any field, or a shift of
 * bytes between fields, yields different AAD and the blob no longer opens.
 */
import { SecretdError, invalid } from "../errors.js";

const LABEL = "secretd/v1";
// Lone surrogates become U+FFFD in UTF-8, which would let two different strings encode alike.
const LONE_SURROGATE = /\p{Cs}/u;

export interface AadRow {
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly uid: string;
  readonly version: number;
}

export function secretAad(row: AadRow): Buffer {
  if (!Number.isSafeInteger(row.version) || row.version < 0) {
    throw new SecretdError("INTERNAL", "secret version must be a non-negative integer");
  }
  const fields: ReadonlyArray<readonly [string, string]> = [
    ["label", LABEL],
    ["tenant", row.tenant],
    ["mesh", row.mesh],
    ["name", row.name],
    ["uid", row.uid],
  ];
  let size = 8;
  for (const [name, value] of fields) {
    if (LONE_SURROGATE.test(value)) throw invalid(name, "must be well-formed Unicode");
    size += 4 + Buffer.byteLength(value, "utf8");
  }
  // One allocation (this runs on every read): each field as uint32 BE length | UTF-8 bytes.
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const [, value] of fields) {
    const len = out.write(value, at + 4, "utf8");
    out.writeUInt32BE(len, at);
    at += 4 + len;
  }
  out.writeBigUInt64BE(BigInt(row.version), at);
  return out;
}
