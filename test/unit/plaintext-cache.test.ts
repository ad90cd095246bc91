/**
 * The cache of opened payloads (PlaintextCache) and openData with it: an exact-bytes
 * memo that never answers for another row, blob or keyring, is bounded by bytes, and
 * zeroes every plaintext that leaves it.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KeyringHolder } from "../../src/crypto/keyring-holder.js";
import { rotateKeyring } from "../../src/crypto/keyring.js";
import { PlaintextCache } from "../../src/crypto/plaintext-cache.js";
import { openData, sealData } from "../../src/domain/barrier.js";
import type { VersionRow } from "../../src/storage/storage.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "secretd-ptcache-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let seq = 0;
function holder(): KeyringHolder {
  const file = path.join(fs.mkdtempSync(path.join(tmpRoot, `d${seq++}-`)), "kek.json");
  return new KeyringHolder(file, { create: true, watch: false, info: () => {}, warn: () => {} });
}

const row = { tenant: "acme", mesh: "prod", name: "db", uid: "uid-1" };
const value = (s: string): Map<string, Buffer> => new Map([["pw", Buffer.from(s)]]);
const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

describe("PlaintextCache", () => {
  it("when a row is opened twice, then the second read is served from the cache and the caller gets its own copy each time", () => {
    const keys = holder();
    const cache = new PlaintextCache(1 << 20);
    const v = sealData(keys, row, 1, value("s3cr3t"), 0);
    const first = openData(keys, row, v, cache);
    expect(cache.holds(row.uid)).toBe(true);
    first.get("pw")!.fill(0x78); // a caller scribbling on its copy changes nothing cached
    const second = openData(keys, row, v, cache);
    expect(second.get("pw")!.toString()).toBe("s3cr3t");
    expect(second.get("pw")).not.toBe(first.get("pw"));
    keys.close();
  });

  it("when the same uid and version come with another tenant, mesh, name, wrapped key or payload, then the cache does not answer", () => {
    const keys = holder();
    const cache = new PlaintextCache(1 << 20);
    const v = sealData(keys, row, 1, value("s3cr3t"), 0);
    const ring = keys.current();
    const plaintext = Buffer.from("pretend");
    expect(cache.add(ring, row, v, plaintext)).toBe(true);
    expect(cache.get(ring, row, v)).toBe(plaintext);
    for (const other of [{ ...row, tenant: "globex" }, { ...row, mesh: "dev" }, { ...row, name: "db2" }]) expect(cache.get(ring, other, v)).toBeUndefined();
    const flipped = (b: Uint8Array): Buffer => {
      const c = Buffer.from(b);
      c[c.length - 1]! ^= 1;
      return c;
    };
    expect(cache.get(ring, row, { ...v, dek: flipped(v.dek) })).toBeUndefined();
    expect(cache.get(ring, row, { ...v, payload: flipped(v.payload) })).toBeUndefined();
    expect(cache.get(ring, row, { ...v, version: 2 })).toBeUndefined();
    keys.close();
  });

  it("when a tampered payload has the uid and version of a cached one, then openData still fails with DATA_LOSS", () => {
    const keys = holder();
    const cache = new PlaintextCache(1 << 20);
    const v = sealData(keys, row, 1, value("s3cr3t"), 0);
    openData(keys, row, v, cache);
    const bad = Buffer.from(v.payload);
    bad[bad.length - 1]! ^= 1;
    expect(() => openData(keys, row, { ...v, payload: bad }, cache)).toThrow(/failed to authenticate/);
    // The same blob under another tenant's row identity (other AAD) does not open either.
    expect(() => openData(keys, { ...row, tenant: "globex" }, v, cache)).toThrow(/failed to authenticate/);
    keys.close();
  });

  it("when the keyring is reloaded (a KEK file change), then entries opened under the old one miss and are zeroed", () => {
    const keys = holder();
    const cache = new PlaintextCache(1 << 20);
    const v = sealData(keys, row, 1, value("s3cr3t"), 0);
    const plaintext = Buffer.from("opened");
    cache.add(keys.current(), row, v, plaintext);
    rotateKeyring(keys.file);
    keys.refresh();
    expect(cache.get(keys.current(), row, v)).toBeUndefined();
    expect(isZero(plaintext)).toBe(true);
    expect(cache.size).toBe(0);
    keys.close();
  });

  it("when more bytes are added than allowed, then the least recently used entries go first and are zeroed", () => {
    const keys = holder();
    const cache = new PlaintextCache(16 * 1024);
    const ring = keys.current();
    const versions: VersionRow[] = [];
    const plaintexts: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      versions.push(sealData(keys, { ...row, uid: `u${i}` }, 1, value("x".repeat(600)), 0));
      plaintexts.push(Buffer.alloc(600, 1));
    }
    for (let i = 0; i < 12; i++) {
      expect(cache.add(ring, { ...row, uid: `u${i}` }, versions[i]!, plaintexts[i]!)).toBe(true);
      cache.get(ring, { ...row, uid: "u0" }, versions[0]!); // u0 stays recently used
      expect(cache.bytes).toBeLessThanOrEqual(16 * 1024);
    }
    expect(cache.holds("u0")).toBe(true);
    expect(cache.holds("u1")).toBe(false);
    expect(isZero(plaintexts[1]!)).toBe(true);
    expect(isZero(plaintexts[0]!)).toBe(false);
    expect(cache.holds("u11")).toBe(true);
    keys.close();
  });

  it("when an entry is larger than an eighth of the cache, or the cache is off, then it is not kept and the caller wipes it", () => {
    const keys = holder();
    const v = sealData(keys, row, 1, value("s3cr3t"), 0);
    const big = new PlaintextCache(8 * 1024);
    expect(big.add(keys.current(), row, v, Buffer.alloc(2048))).toBe(false);
    const off = new PlaintextCache(0);
    expect(off.add(keys.current(), row, v, Buffer.alloc(16))).toBe(false);
    expect(openData(keys, row, v, off).get("pw")!.toString()).toBe("s3cr3t");
    expect(off.size).toBe(0);
    keys.close();
  });

  it("when a secret is invalidated or the cache cleared, then every version of it is dropped and zeroed", () => {
    const keys = holder();
    const cache = new PlaintextCache(1 << 20);
    const ring = keys.current();
    const p1 = Buffer.from("one");
    const p2 = Buffer.from("two");
    const p3 = Buffer.from("three");
    cache.add(ring, row, sealData(keys, row, 1, value("a"), 0), p1);
    cache.add(ring, row, sealData(keys, row, 2, value("b"), 0), p2);
    cache.add(ring, { ...row, uid: "uid-2" }, sealData(keys, { ...row, uid: "uid-2" }, 1, value("c"), 0), p3);
    cache.invalidate(row.uid);
    expect(cache.holds(row.uid)).toBe(false);
    expect(isZero(p1) && isZero(p2)).toBe(true);
    expect(cache.size).toBe(1);
    cache.clear();
    expect(isZero(p3)).toBe(true);
    expect(cache.bytes).toBe(0);
    keys.close();
  });
});
