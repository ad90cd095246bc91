/**
 * The bytes fed to a hash or MAC: each part as a 4-byte big-endian length then its
 * bytes, so no byte can move from one field to the next without changing the digest.
 * Numbers are written as their decimal text, strings as UTF-8. Built into one buffer and
 * fed with one update (per-part updates cost ~1 us each on the projection path).
 */
export type Part = string | Uint8Array | number;

export function lengthPrefixed(parts: readonly Part[]): Buffer {
  let size = 0;
  for (const p of parts) size += 4 + (typeof p === "string" ? Buffer.byteLength(p, "utf8") : typeof p === "number" ? String(p).length : p.length);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    let len: number;
    if (typeof p === "string") len = out.write(p, at + 4, "utf8");
    else if (typeof p === "number") len = out.write(String(p), at + 4, "latin1");
    else {
      out.set(p, at + 4);
      len = p.length;
    }
    out.writeUInt32BE(len, at);
    at += 4 + len;
  }
  return out;
}
