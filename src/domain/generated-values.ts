/**
 * RotateSecret's `generate` (#30 item 4): the server makes a value (a password) so it
 * never crosses the wire on the way in. Each character is drawn uniformly from the
 * alphabet by rejection sampling over CSPRNG bytes (a byte at or above the largest
 * multiple of the alphabet's size is drawn again), so no character is more likely.
 */
import { randomBytes } from "../crypto/random.js";
import { invalid } from "../errors.js";
import type { GeneratedValue } from "../gen/secrets/v1/secrets.js";
import { validateDataKey } from "./validation.js";

export const DEFAULT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
export const DEFAULT_LENGTH = 32;
export const MIN_LENGTH = 8;
export const MAX_LENGTH = 4096;
/** Printable ASCII without space: every alphabet is a subset, of at least 2 and at most 94 distinct characters. */
const PRINTABLE = /^[\x21-\x7e]+$/;
export const MAX_GENERATED = 16;

function alphabetOf(g: GeneratedValue, field: string): string {
  const alphabet = g.alphabet === "" ? DEFAULT_ALPHABET : g.alphabet;
  if (!PRINTABLE.test(alphabet)) throw invalid(`${field}.alphabet`, "must hold printable ASCII characters only (no space)");
  if (new Set(alphabet).size !== alphabet.length) throw invalid(`${field}.alphabet`, "lists a character twice");
  if (alphabet.length < 2) throw invalid(`${field}.alphabet`, "must hold at least 2 characters");
  return alphabet;
}

/** One uniformly drawn string of `length` characters of `alphabet` (at most 94 of them). */
export function generate(length: number, alphabet: string): string {
  const n = alphabet.length;
  const limit = 256 - (256 % n);
  let out = "";
  while (out.length < length) {
    const bytes = randomBytes(Math.max(16, (length - out.length) * 2));
    for (const b of bytes) {
      if (b >= limit) continue;
      out += alphabet[b % n]!;
      if (out.length === length) break;
    }
    bytes.fill(0);
  }
  return out;
}

/** The values `generate` asks for, checked (keys, bounds), by key. */
export function generatedValues(items: readonly GeneratedValue[]): Map<string, Buffer> {
  if (items.length > MAX_GENERATED) throw invalid("generate", `at most ${MAX_GENERATED} values`);
  const out = new Map<string, Buffer>();
  items.forEach((g, i) => {
    const field = `generate[${i}]`;
    validateDataKey(g.key, `${field}.key`);
    if (out.has(g.key)) throw invalid(`${field}.key`, `names key "${g.key}" twice`);
    const length = g.length === 0 ? DEFAULT_LENGTH : g.length;
    if (length < MIN_LENGTH || length > MAX_LENGTH) throw invalid(`${field}.length`, `must be ${MIN_LENGTH}-${MAX_LENGTH} (0: ${DEFAULT_LENGTH})`);
    out.set(g.key, Buffer.from(generate(length, alphabetOf(g, field)), "ascii"));
  });
  return out;
}
