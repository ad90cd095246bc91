/**
 * Feeds parts to a hash or MAC, each as a 4-byte big-endian length then its bytes, so no
 * byte can move from one field to the next without changing the digest. Numbers are
 * fed as their decimal text.
 */
export function updateLengthPrefixed(h: { update(data: Uint8Array): unknown }, parts: Iterable<string | Uint8Array | number>): void {
  for (const part of parts) {
    const bytes = typeof part === "number" ? Buffer.from(String(part)) : typeof part === "string" ? Buffer.from(part, "utf8") : part;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(bytes.length);
    h.update(len);
    h.update(bytes);
  }
}
