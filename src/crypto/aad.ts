/**
 * Additional authenticated data that binds a sealed version to its row. The encoding
 * is injective: a fixed label, every string length-prefixed (uint32 BE) in a fixed
 * order, the version as 8-byte big-endian. So any change to any field, or a shift of
 * bytes between fields, yields different AAD and the blob no longer opens.
 */
import { SecretdError, invalid } from "../domain/errors.js";

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
  const version = Buffer.alloc(8);
  version.writeBigUInt64BE(BigInt(row.version));
  return Buffer.concat([
    field("label", LABEL),
    field("tenant", row.tenant),
    field("mesh", row.mesh),
    field("name", row.name),
    field("uid", row.uid),
    version,
  ]);
}

function field(name: string, value: string): Buffer {
  if (LONE_SURROGATE.test(value)) throw invalid(name, "must be well-formed Unicode");
  const bytes = Buffer.from(value, "utf8");
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}
