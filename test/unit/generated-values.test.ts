/** RotateSecret's generate: bounds on length and alphabet, and draws from the whole alphabet only. */
import { describe, expect, it } from "vitest";
import { generate, generatedValues } from "../../src/domain/generated-values.js";
import { SecretdError } from "../../src/errors.js";

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return e instanceof SecretdError ? e.code : "other";
  }
  return undefined;
};

describe("generated values", () => {
  it("draws every character of the alphabet, and only those, about equally often", () => {
    const alphabet = "abcdefghij"; // 10 does not divide 256: a modulo without rejection favours a-f
    const counts = new Map<string, number>();
    for (const ch of generate(1_000_000, alphabet)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect([...counts.keys()].sort().join("")).toBe(alphabet);
    for (const n of counts.values()) expect(Math.abs(n - 100_000)).toBeLessThan(1200); // 4 sigma; a modulo bias would put a-f 1,560 above
  });

  it("defaults to 32 letters and digits; refuses bad lengths, alphabets, keys and duplicates", () => {
    expect(generatedValues([{ key: "pw", length: 0, alphabet: "" }]).get("pw")!.toString()).toMatch(/^[A-Za-z0-9]{32}$/);
    for (const bad of [
      [{ key: "pw", length: 7, alphabet: "" }],
      [{ key: "pw", length: 4097, alphabet: "" }],
      [{ key: "pw", length: 16, alphabet: "a" }],
      [{ key: "pw", length: 16, alphabet: "abca" }],
      [{ key: "pw", length: 16, alphabet: "ab\u00e9" }],
      [{ key: "", length: 16, alphabet: "" }],
      [{ key: "pw", length: 16, alphabet: "" }, { key: "pw", length: 16, alphabet: "" }],
    ]) expect(codeOf(() => generatedValues(bad))).toBe("INVALID_ARGUMENT");
  });
});
