/**
 * The text fed to a row MAC: each part as `<length in UTF-16 code units>:<part>`, joined
 * into one string and fed to the MAC as UTF-8 in one update. Read from the left, the
 * lengths split it back into its parts, so no character can move from one part to the
 * next without changing the text (the same property as length-prefixed.ts). It exists
 * beside lengthPrefixed because row MACs run on every listed row: for ~25 short parts it
 * costs a fraction of writing each part into a buffer (measured in docs/BENCHMARKS.md).
 */
export type TextPart = string | number;

export function framedText(parts: readonly TextPart[]): string {
  let out = "";
  for (const p of parts) {
    const s = typeof p === "number" ? String(p) : p;
    out += `${s.length}:${s}`;
  }
  return out;
}
