/**
 * The plaintext that gets sealed: a version's data map in one canonical encoding.
 *
 *   0x01 | count (uint32 BE) | count × ( keyLen (uint32 BE) | key (UTF-8) | valueLen (uint32 BE) | value )
 *
 * Keys are sorted, so equal maps encode to equal bytes. Decoding accepts only that
 * canonical form; anything else is DATA_LOSS (it only ever reads authenticated bytes,
 * so a mismatch means a bug or corruption, not a caller error).
 */
import { SecretdError, invalid } from "../errors.js";

const FORMAT = 0x01;
// Lone surrogates become U+FFFD in UTF-8: two keys could encode alike and never decode.
const LONE_SURROGATE = /\p{Cs}/u;

export function encodeData(data: ReadonlyMap<string, Uint8Array> | Record<string, Uint8Array>): Buffer {
  const entries = data instanceof Map ? [...(data as ReadonlyMap<string, Uint8Array>)] : Object.entries(data);
  entries.sort(([a], [b]) => compareKeys(a, b));
  const parts: Uint8Array[] = [Buffer.from([FORMAT]), uint32(entries.length)];
  for (const [key, value] of entries) {
    if (LONE_SURROGATE.test(key)) throw invalid("data key", "must be well-formed Unicode");
    const k = Buffer.from(key, "utf8");
    parts.push(uint32(k.length), k, uint32(value.length), value);
  }
  return Buffer.concat(parts);
}

export function decodeData(buf: Uint8Array): Map<string, Buffer> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 5) throw corrupt("truncated header");
  if (b[0] !== FORMAT) throw corrupt(`unknown format ${b[0]}`);
  const count = b.readUInt32BE(1);
  let at = 5;
  const take = (): Buffer => {
    if (b.length - at < 4) throw corrupt("truncated length");
    const len = b.readUInt32BE(at);
    at += 4;
    if (b.length - at < len) throw corrupt("truncated field");
    const out = Buffer.from(b.subarray(at, at + len)); // a copy, independent of the plaintext buffer
    at += len;
    return out;
  };
  const out = new Map<string, Buffer>();
  let previous: string | undefined;
  for (let i = 0; i < count; i++) {
    const key = take().toString("utf8");
    if (previous !== undefined && compareKeys(previous, key) >= 0) throw corrupt("keys out of order or repeated");
    out.set(key, take());
    previous = key;
  }
  if (at !== b.length) throw corrupt("trailing bytes");
  return out;
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function corrupt(why: string): SecretdError {
  return new SecretdError("DATA_LOSS", `stored secret data is malformed: ${why}`);
}
