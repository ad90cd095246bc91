/**
 * One-dimensional PostgreSQL arrays in the binary wire format (array_send / array_recv),
 * as Buffers: node-postgres sends a Buffer parameter in binary, so a statement that casts
 * it (`$1::bytea[]`, `$2::text[]`, `$3::bigint[]`, `$4::boolean[]`) receives the array as
 * is. A JS array parameter is instead rendered as a text literal (every element quoted and
 * escaped, every bytea as hex, twice its size) that PostgreSQL parses back: for the batch
 * create (#29 item 1), 64 creates of a 1 KiB value each, that was most of what a replica
 * spent sending the statement and part of what PostgreSQL spent reading it.
 * Format: ndim, has-nulls flag, element type OID, then (length, lower bound 1) per
 * dimension, then each element as its length (-1 for NULL) and its bytes. Text is sent in
 * the client encoding, UTF-8 (node-postgres's default).
 */

const BYTEA = 17;
const TEXT = 25;
const INT8 = 20;
const BOOL = 16;

function binaryArray(oid: number, elements: readonly (Buffer | null)[]): Buffer {
  let size = elements.length === 0 ? 12 : 20;
  let nulls = 0;
  for (const e of elements) {
    size += 4 + (e?.length ?? 0);
    if (e === null) nulls = 1;
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.writeInt32BE(elements.length === 0 ? 0 : 1, 0);
  at = out.writeInt32BE(nulls, at);
  at = out.writeInt32BE(oid, at);
  if (elements.length > 0) {
    at = out.writeInt32BE(elements.length, at);
    at = out.writeInt32BE(1, at);
  }
  for (const e of elements) {
    if (e === null) {
      at = out.writeInt32BE(-1, at);
      continue;
    }
    at = out.writeInt32BE(e.length, at);
    at += e.copy(out, at);
  }
  return out;
}

export function byteaArray(values: readonly (Uint8Array | null | undefined)[]): Buffer {
  return binaryArray(
    BYTEA,
    values.map((v) => (v == null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength))),
  );
}

export function textArray(values: readonly (string | null | undefined)[]): Buffer {
  return binaryArray(
    TEXT,
    values.map((v) => (v == null ? null : Buffer.from(v, "utf8"))),
  );
}

/** Integers (JS numbers, safe integers: times in ms, versions) as int8. */
export function int8Array(values: readonly (number | null | undefined)[]): Buffer {
  return binaryArray(
    INT8,
    values.map((v) => {
      if (v == null) return null;
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(BigInt(v));
      return b;
    }),
  );
}

export function boolArray(values: readonly (boolean | null | undefined)[]): Buffer {
  return binaryArray(
    BOOL,
    values.map((v) => (v == null ? null : Buffer.from([v ? 1 : 0]))),
  );
}
