/**
 * The cache of encoded answers (AnswerCache): an answer comes back only for the same
 * key, sources of the same stamps (stampOf: what the rows are, not which objects), the
 * same keyring and before its first expiry; callers get copies; it is bounded by bytes;
 * every answer is zeroed when it leaves.
 */
import { describe, expect, it } from "vitest";
import { AnswerCache } from "../../src/transport/grpc/answer-cache.js";
import { stampOf } from "../../src/transport/grpc/answers.js";
import type { SecretWithVersion } from "../../src/storage/storage.js";
import type { Keyring } from "../../src/crypto/keyring.js";

const ring = {} as Keyring;
const otherRing = {} as Keyring;
const st = (text: string, payload?: Uint8Array) => ({ text, payload });
const rowA = st("a\0stamp");
const rowB = st("b\0stamp");
const src = [
  { uid: "a", bytes: 100 },
  { uid: "b", bytes: 100 },
];
const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

function added(cache: AnswerCache<string>, key: string, encoded: Buffer, validUntil = Infinity): boolean {
  return cache.add(key, ring, [rowA, rowB], src, validUntil, encoded, `meta-${key}`);
}

describe("AnswerCache", () => {
  it("when the same key is asked with the same rows and keyring, then a copy of the answer comes back with its meta", () => {
    const cache = new AnswerCache<string>(1 << 20);
    expect(added(cache, "k", Buffer.from("answer bytes"))).toBe(true);
    const hit = cache.answer("k", ring, [rowA, rowB], 0);
    expect(hit?.encoded.toString()).toBe("answer bytes");
    expect(hit?.meta).toBe("meta-k");
    hit!.encoded.fill(0); // a caller scribbling on its copy changes nothing cached
    expect(cache.answer("k", ring, [rowA, rowB], 0)?.encoded.toString()).toBe("answer bytes");
    expect(cache.meta("k")).toBe("meta-k");
  });

  it("when a stamp is another, the keyring another, the key another or the time at its expiry, then it misses; an equal stamp made anew hits", () => {
    const cache = new AnswerCache<string>(1 << 20);
    added(cache, "k", Buffer.from("x"), 1000);
    expect(cache.answer("k", ring, [rowA, st("b\0other")], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [rowA], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [rowA, st("")], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [st("a\0" + "stamp"), rowB], 0)).toBeDefined();
    expect(cache.answer("other", ring, [rowA, rowB], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [rowA, rowB], 999)).toBeDefined();
    expect(cache.answer("k", ring, [rowA, rowB], 1000)).toBeUndefined();
    expect(cache.size).toBe(0); // expired: dropped
    added(cache, "k", Buffer.from("x"));
    expect(cache.answer("k", otherRing, [rowA, rowB], 0)).toBeUndefined();
    expect(cache.size).toBe(0); // another keyring: dropped
  });

  it("when a source's stored ciphertext is other bytes under the same text (a swapped blob), then it misses; the same bytes in a new buffer hit", () => {
    const cache = new AnswerCache<string>(1 << 20);
    cache.add("k", ring, [st("a", Buffer.from("sealed-1"))], src.slice(0, 1), Infinity, Buffer.from("x"), "m");
    expect(cache.answer("k", ring, [st("a", Buffer.from("sealed-2"))], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [st("a")], 0)).toBeUndefined();
    expect(cache.answer("k", ring, [st("a", Buffer.from("sealed-1"))], 0)).toBeDefined();
  });

  it("when any of its sources is invalidated, or the cache cleared, then the answer is gone and zeroed", () => {
    const cache = new AnswerCache<string>(1 << 20);
    const kept: Buffer[] = [];
    const spy = (k: string): void => {
      const b = Buffer.from(`secret answer ${k}`);
      expect(added(cache, k, b)).toBe(true); // owned by the cache from here
      kept.push(b);
    };
    spy("one");
    spy("two");
    expect(cache.holds("a") && cache.holds("b")).toBe(true);
    cache.invalidate("b");
    expect(cache.holds("a")).toBe(false);
    expect(cache.size).toBe(0);
    expect(kept.every(isZero)).toBe(true);
    spy("three");
    cache.clear();
    expect(isZero(kept[2]!)).toBe(true);
  });

  it("when answers exceed the bound, then the least recently used go first and are zeroed; one too large is never kept; 0 turns it off", () => {
    const cache = new AnswerCache<string>(8 * 1024);
    const big = Buffer.alloc(cache.maxEntryBytes, 1);
    expect(added(cache, "big", big)).toBe(false);
    expect(cache.size).toBe(0);
    expect(isZero(big)).toBe(false); // not taken: still the caller's
    const stored: Buffer[] = [];
    for (let i = 0; i < 20; i++) {
      const b = Buffer.alloc(200, 7);
      added(cache, `k${i}`, b);
      stored.push(b);
      expect(cache.answer("k0", ring, [rowA, rowB], 0)).toBeDefined(); // k0 stays the most recent
    }
    expect(cache.size).toBeLessThan(20);
    expect(cache.answer("k0", ring, [rowA, rowB], 0)).toBeDefined();
    expect(cache.answer("k1", ring, [rowA, rowB], 0)).toBeUndefined();
    expect(isZero(stored[1]!)).toBe(true);
    const off = new AnswerCache<string>(0);
    expect(added(off, "k", Buffer.from("x"))).toBe(false);
    expect(off.on).toBe(false);
    expect(off.size).toBe(0);
  });

  it("when a row is read again as a new, equal object, then its stamp is the same; when its etag, version, grants MAC or row MAC differ, then it is another", () => {
    const row = (over: { etag?: string; version?: number; grantsMac?: number; mac?: number; v?: number } = {}): SecretWithVersion =>
      ({
        secret: { uid: "u1", version: over.version ?? 2, etag: over.etag ?? "e1", grantsMac: Buffer.alloc(32, over.grantsMac ?? 1), mac: Buffer.alloc(32, over.mac ?? 2) },
        version: { version: over.v ?? 2 },
        grants: [],
        latestVersion: 2,
      }) as unknown as SecretWithVersion;
    expect(stampOf(row())).toEqual(stampOf(row()));
    for (const other of [row({ etag: "e2" }), row({ version: 3 }), row({ grantsMac: 9 }), row({ mac: 9 }), row({ v: 1 }), undefined]) {
      expect(stampOf(other).text).not.toBe(stampOf(row()).text);
    }
    expect(stampOf(undefined)).toEqual({ text: "" });
  });
});
