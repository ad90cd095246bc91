import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lengthPrefixed, type Part } from "../../src/crypto/length-prefixed.js";

/** The layout, written the plain way: a 4-byte big-endian length, then the part's bytes. */
function reference(parts: readonly Part[]): Buffer {
  return Buffer.concat(
    parts.map((p) => {
      const bytes = typeof p === "number" ? Buffer.from(String(p), "latin1") : typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(bytes.length);
      return Buffer.concat([len, bytes]);
    }),
  );
}

const part: fc.Arbitrary<Part> = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.string(),
  fc.integer(),
  fc.uint8Array({ maxLength: 300 }),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a).subarray(1)), // a view not at offset 0
);

describe("lengthPrefixed", () => {
  it("when given any strings (UTF-8, lone surrogates, NUL), numbers and byte arrays, then it writes exactly the length-prefixed layout", () => {
    fc.assert(
      fc.property(fc.array(part, { maxLength: 60 }), (parts) => lengthPrefixed(parts).equals(reference(parts))),
      { numRuns: 2000 },
    );
  });

  it("when a byte moves from one part to the next, then the bytes differ", () => {
    expect(lengthPrefixed(["ab", "c"]).equals(lengthPrefixed(["a", "bc"]))).toBe(false);
    expect(lengthPrefixed(["é", Buffer.from("x")])).toEqual(reference(["é", Buffer.from("x")]));
  });
});
