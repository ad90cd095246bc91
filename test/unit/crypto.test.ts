import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { secretAad, type AadRow } from "../../src/crypto/aad.js";
import { decodeData, encodeData } from "../../src/crypto/data-codec.js";
import { DataKeyCache } from "../../src/crypto/data-key-cache.js";
import { lengthPrefixed } from "../../src/crypto/length-prefixed.js";
import { kekIdOf, openVersion, rewrapDek, sealVersion } from "../../src/crypto/envelope.js";
import { Keyring, loadKeyring, rotateKeyring, type Kek } from "../../src/crypto/keyring.js";
import { SecretdError } from "../../src/errors.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "secretd-crypto-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirSeq = 0;
const freshDir = (): string => fs.mkdtempSync(path.join(tmpRoot, `d${dirSeq++}-`));

const kek = (id: string): Kek => ({ id, key: randomBytes(32), created: "2024-01-02T03:04:05Z" });
const K1 = kek("k-one");
const keyring = new Keyring([K1], K1.id);
const row: AadRow = { tenant: "acme", mesh: "prod", name: "db", uid: "3f1c0d7e-uid", version: 3 };
const aad = secretAad(row);
const MARKER = "PLAINTEXT-MARKER-7f3a9c";
const plaintext = Buffer.from(`value ${MARKER} value`);

function expectCode(code: string, fn: () => unknown): SecretdError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SecretdError);
  expect((caught as SecretdError).code).toBe(code);
  return caught as SecretdError;
}

function expectDataLoss(fn: () => unknown): void {
  const err = expectCode("DATA_LOSS", fn);
  expect(err.message).toBe("stored secret data failed to authenticate");
}

function flipped(buf: Uint8Array, i: number): Buffer {
  const copy = Buffer.from(buf);
  copy[i] = copy[i]! ^ 0x01;
  return copy;
}

describe("envelope", () => {
  it("when a version is sealed and opened with the same row, then the plaintext comes back", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    expect(openVersion(keyring, aad, dek, payload)).toEqual(plaintext);
    const empty = sealVersion(keyring, aad, new Uint8Array(0));
    expect(openVersion(keyring, aad, empty.dek, empty.payload)).toEqual(Buffer.alloc(0));
  });

  it("when any field of the AAD differs, then opening fails with DATA_LOSS", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    const variants: AadRow[] = [
      { ...row, tenant: "acme2" },
      { ...row, mesh: "" },
      { ...row, name: "db2" },
      { ...row, uid: "3f1c0d7e-uiD" },
      { ...row, version: 4 },
      { ...row, version: 3 + 2 ** 32 }, // would collide if the version were cut to 32 bits
    ];
    for (const v of variants) expectDataLoss(() => openVersion(keyring, secretAad(v), dek, payload));
  });

  it("when bytes move from one AAD field to the next, then the AAD differs (fields are length-prefixed)", () => {
    const a = secretAad({ ...row, tenant: "ab", mesh: "c" });
    const b = secretAad({ ...row, tenant: "a", mesh: "bc" });
    expect(a.equals(b)).toBe(false);
    const { dek, payload } = sealVersion(keyring, a, plaintext);
    expectDataLoss(() => openVersion(keyring, b, dek, payload));
  });

  it("when any single byte of the payload (format, nonce, ciphertext, tag) is flipped, then opening fails with DATA_LOSS", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    expect(payload.length).toBe(1 + 12 + plaintext.length + 16);
    for (let i = 0; i < payload.length; i++) expectDataLoss(() => openVersion(keyring, aad, dek, flipped(payload, i)));
  });

  it("when any single byte of the wrapped data key is flipped, then opening fails with DATA_LOSS", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    expect(dek.length).toBe(2 + K1.id.length + 12 + 32 + 16);
    for (let i = 0; i < dek.length; i++) expectDataLoss(() => openVersion(keyring, aad, flipped(dek, i), payload));
  });

  it("when 1 to 15 bytes of a tag are dropped, then opening fails with DATA_LOSS", () => {
    for (const text of [plaintext, Buffer.alloc(0)]) {
      const { dek, payload } = sealVersion(keyring, aad, text);
      for (let drop = 1; drop <= 15; drop++) {
        expectDataLoss(() => openVersion(keyring, aad, dek, payload.subarray(0, payload.length - drop)));
        expectDataLoss(() => openVersion(keyring, aad, dek.subarray(0, dek.length - drop), payload));
      }
    }
  });

  it("when a payload or data key is swapped with another version's or row's, then opening fails with DATA_LOSS", () => {
    const v3 = sealVersion(keyring, aad, plaintext);
    const aad4 = secretAad({ ...row, version: 4 });
    const v4 = sealVersion(keyring, aad4, plaintext);
    const aadOther = secretAad({ ...row, name: "other", uid: "other-uid" });
    const other = sealVersion(keyring, aadOther, plaintext);
    expectDataLoss(() => openVersion(keyring, aad, v3.dek, v4.payload));
    expectDataLoss(() => openVersion(keyring, aad4, v4.dek, v3.payload));
    expectDataLoss(() => openVersion(keyring, aad, v4.dek, v4.payload)); // the whole pair moved to another version
    expectDataLoss(() => openVersion(keyring, aad, other.dek, other.payload)); // the whole pair moved to another row
    expectDataLoss(() => openVersion(keyring, aadOther, v3.dek, other.payload));
  });

  it("when the named KEK is unknown or holds other key bytes, then opening fails with DATA_LOSS", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    const K2 = kek("k-two");
    expectDataLoss(() => openVersion(new Keyring([K2], K2.id), aad, dek, payload));
    const impostor = new Keyring([{ ...K1, key: randomBytes(32) }], K1.id);
    expectDataLoss(() => openVersion(impostor, aad, dek, payload));
  });

  it("when the KEK id in a wrapped data key is rewritten to another known KEK, then opening fails with DATA_LOSS", () => {
    const sameBytes = new Keyring([K1, { ...K1, id: "k-ONE" }], K1.id);
    const { dek, payload } = sealVersion(sameBytes, aad, plaintext);
    const renamed = Buffer.from(dek);
    renamed.write("k-ONE", 2, "latin1");
    expect(kekIdOf(renamed)).toBe("k-ONE");
    expectDataLoss(() => openVersion(sameBytes, aad, renamed, payload)); // the id is in the wrap's AAD
  });

  it("when the format byte is unknown or the blobs are garbage, then opening fails with DATA_LOSS and the cause is kept", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    const badFormat = Buffer.from(payload);
    badFormat[0] = 0x02;
    expectDataLoss(() => openVersion(keyring, aad, dek, badFormat));
    expectDataLoss(() => openVersion(keyring, aad, Buffer.alloc(0), payload));
    expectDataLoss(() => openVersion(keyring, aad, dek, Buffer.alloc(0)));
    expectDataLoss(() => openVersion(keyring, aad, Buffer.concat([dek, Buffer.from([0])]), payload));
    expectDataLoss(() => kekIdOf(Buffer.from([1, 200, 1, 2])));
    const err = expectCode("DATA_LOSS", () => openVersion(new Keyring([kek("k-x")], "k-x"), aad, dek, payload));
    expect(err.cause).toBeInstanceOf(Error);
  });

  it("when the same plaintext is sealed twice, then the data keys, nonces and ciphertexts all differ", () => {
    const a = sealVersion(keyring, aad, plaintext);
    const b = sealVersion(keyring, aad, plaintext);
    expect(a.payload.subarray(1, 13).equals(b.payload.subarray(1, 13))).toBe(false);
    expect(a.payload.subarray(13).equals(b.payload.subarray(13))).toBe(false);
    expect(a.dek.equals(b.dek)).toBe(false);
    // A payload only opens under its own data key: the two seals used different DEKs.
    expectDataLoss(() => openVersion(keyring, aad, a.dek, b.payload));
  });

  it("when a version is sealed, then neither the plaintext marker nor the KEK bytes appear in the stored blobs", () => {
    const { dek, payload } = sealVersion(keyring, aad, plaintext);
    for (const blob of [dek, payload]) {
      expect(blob.includes(Buffer.from(MARKER))).toBe(false);
      expect(blob.includes(K1.key)).toBe(false);
      expect(blob.toString("latin1")).not.toContain(MARKER);
    }
  });
});

describe("data key cache", () => {
  it("when a version is opened again, then the KEK is not used (the data key comes from the cache) and the plaintext is the same", () => {
    const ring = new Keyring([K1], K1.id);
    const { dek, payload } = sealVersion(ring, aad, plaintext);
    const get = vi.spyOn(ring, "get");
    expect(openVersion(ring, aad, dek, payload)).toEqual(plaintext);
    expect(get).toHaveBeenCalledTimes(1);
    expect(openVersion(ring, aad, dek, payload)).toEqual(plaintext);
    expect(get).toHaveBeenCalledTimes(1);
    expect(ring.dataKeys.size).toBe(1);
  });

  it("when a cached data key meets another row's AAD, a swapped or a tampered payload, then opening still fails with DATA_LOSS", () => {
    const ring = new Keyring([K1], K1.id);
    const v3 = sealVersion(ring, aad, plaintext);
    const aad4 = secretAad({ ...row, version: 4 });
    const v4 = sealVersion(ring, aad4, plaintext);
    expect(openVersion(ring, aad, v3.dek, v3.payload)).toEqual(plaintext);
    expect(openVersion(ring, aad4, v4.dek, v4.payload)).toEqual(plaintext);
    expect(ring.dataKeys.size).toBe(2);
    expectDataLoss(() => openVersion(ring, aad4, v3.dek, v3.payload)); // the pair moved to another version
    expectDataLoss(() => openVersion(ring, secretAad({ ...row, tenant: "evil" }), v3.dek, v3.payload)); // another tenant
    expectDataLoss(() => openVersion(ring, aad, v3.dek, v4.payload));
    for (const i of [1, 20, v3.payload.length - 1]) expectDataLoss(() => openVersion(ring, aad, v3.dek, flipped(v3.payload, i)));
    expect(openVersion(ring, aad, v3.dek, v3.payload)).toEqual(plaintext); // and the cached key still works
  });

  it("when a wrapped key fails to authenticate, then nothing is cached", () => {
    const ring = new Keyring([K1], K1.id);
    const { dek, payload } = sealVersion(ring, aad, plaintext);
    expectDataLoss(() => openVersion(ring, aad, flipped(dek, dek.length - 1), payload));
    expectDataLoss(() => openVersion(ring, aad, dek, flipped(payload, 5))); // the key unwraps, the payload does not open
    expect(ring.dataKeys.size).toBe(0);
  });

  it("when the cache is full, then the least recently used key is evicted and zeroed; clear zeroes every key; capacity 0 keeps none", () => {
    const cache = new DataKeyCache(2);
    const keys = [0, 1, 2].map(() => randomBytes(32));
    const wrapped = [0, 1, 2].map((i) => Buffer.from(`wrapped-${i}`));
    expect(cache.add(wrapped[0]!, aad, keys[0]!)).toBe(true);
    expect(cache.add(wrapped[1]!, aad, keys[1]!)).toBe(true);
    expect(cache.get(wrapped[0]!, aad)).toBe(keys[0]); // 0 is now the most recently used
    cache.add(wrapped[2]!, aad, keys[2]!);
    expect(cache.get(wrapped[1]!, aad)).toBeUndefined();
    expect(keys[1]!.equals(Buffer.alloc(32))).toBe(true);
    expect(cache.get(wrapped[0]!, secretAad({ ...row, name: "other" }))).toBeUndefined(); // same wrapped bytes, other AAD
    cache.clear();
    expect(cache.size).toBe(0);
    for (const k of [keys[0]!, keys[2]!]) expect(k.equals(Buffer.alloc(32))).toBe(true);
    expect(new DataKeyCache(0).add(wrapped[0]!, aad, randomBytes(32))).toBe(false);
  });
});

describe("aad", () => {
  it("when a field holds a lone surrogate, then it is refused (it would encode like U+FFFD)", () => {
    expect(() => secretAad({ ...row, name: "a\uFFFD" })).not.toThrow();
    expectCode("INVALID_ARGUMENT", () => secretAad({ ...row, name: "a\uD800" }));
  });

  it("when a row is encoded, then the bytes are exactly the stored format (blobs sealed earlier must keep opening)", () => {
    const got = secretAad({ tenant: "acme", mesh: "", name: "dé", uid: "u-1", version: 258 });
    const expected =
      "0000000a" + Buffer.from("secretd/v1").toString("hex") +
      "00000004" + Buffer.from("acme").toString("hex") +
      "00000000" +
      "00000003" + "64c3a9" +
      "00000003" + Buffer.from("u-1").toString("hex") +
      "0000000000000102";
    expect(got.toString("hex")).toBe(expected);
  });
});

describe("length-prefixed digest input", () => {
  it("when parts are encoded, then each is a uint32 BE length then its UTF-8, decimal or raw bytes (stored fingerprints depend on it)", () => {
    const parts = ["dé", "", 42, Buffer.from([0, 255]), "a\uD800"];
    const expected = Buffer.concat(
      parts.flatMap((p) => {
        const bytes = typeof p === "number" ? Buffer.from(String(p)) : typeof p === "string" ? Buffer.from(p, "utf8") : p;
        const len = Buffer.alloc(4);
        len.writeUInt32BE(bytes.length);
        return [len, bytes];
      }),
    );
    expect(lengthPrefixed(parts).toString("hex")).toBe(expected.toString("hex"));
    expect(lengthPrefixed([]).length).toBe(0);
  });
});

describe("keyring file", () => {
  it("when the file is missing and create is set, then it is created 0600 with one key, durably, and warn names the path but no key bytes", () => {
    const file = path.join(freshDir(), "nested", "kek.json");
    const warnings: string[] = [];
    const ring = loadKeyring(file, { create: true, warn: (m) => warnings.push(m) });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(`${file}.tmp`)).toBe(false);
    expect(ring.keys).toHaveLength(1);
    expect(ring.active.key.length).toBe(32);
    expect(ring.active.id).toMatch(/^k-\d{14}-[0-9a-f]{4}$/);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(file);
    expect(warnings[0]).toMatch(/back.*up/i);
    expect(warnings[0]).not.toContain(ring.active.key.toString("base64"));
    const doc = JSON.parse(fs.readFileSync(file, "utf8")) as { version: number; active: string; keys: { id: string; key: string }[] };
    expect(doc.version).toBe(1);
    expect(doc.active).toBe(ring.active.id);
    expect(Buffer.from(doc.keys[0]!.key, "base64").equals(ring.active.key)).toBe(true);

    const again: string[] = [];
    const reloaded = loadKeyring(file, { create: true, warn: (m) => again.push(m) });
    expect(reloaded.active.key.equals(ring.active.key)).toBe(true);
    expect(again).toEqual([]);
  });

  it("when the file is missing and create is not set, then FAILED_PRECONDITION names the path", () => {
    const file = path.join(freshDir(), "kek.json");
    const err = expectCode("FAILED_PRECONDITION", () => loadKeyring(file, { create: false, warn: () => {} }));
    expect(err.message).toContain(file);
    expect(fs.existsSync(file)).toBe(false);
  });

  it("when group or others may read the file, then warn is called", () => {
    const file = path.join(freshDir(), "kek.json");
    loadKeyring(file, { create: true, warn: () => {} });
    fs.chmodSync(file, 0o644);
    const warnings: string[] = [];
    loadKeyring(file, { create: false, warn: (m) => warnings.push(m) });
    expect(warnings.some((w) => w.includes(file) && w.includes("0644"))).toBe(true);
  });

  it("when the file is malformed, then FAILED_PRECONDITION names the path and the problem but not the key material", () => {
    const good = randomBytes(32).toString("base64");
    const entry = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ id: "k-a", key: good, created: "2024-01-02T03:04:05Z", ...over });
    const doc = (over: Record<string, unknown>): string => JSON.stringify({ version: 1, active: "k-a", keys: [entry()], ...over });
    const cases: [string, string][] = [
      [`{"version":1,"active":"k-a","keys":[{"id":"k-a","key":"${good}",}]`, "not valid JSON"],
      [`{"version":1,"keys":[{"key":"${good}"x`, "not valid JSON"],
      [doc({ version: 2 }), "version"],
      [doc({ keys: [entry({ key: randomBytes(31).toString("base64") })] }), "32 bytes"],
      [doc({ keys: [entry({ key: randomBytes(33).toString("base64") })] }), "32 bytes"],
      [doc({ keys: [entry({ key: good.replace("=", "") })] }), "32 bytes"],
      [doc({ keys: [entry(), entry()] }), "duplicate key id k-a"],
      [doc({ active: "bad id", keys: [entry({ id: "bad id" })] }), "does not match"],
      [doc({ keys: [entry({ id: "x".repeat(65) })] }), "does not match"],
      [doc({ active: "k-missing" }), "active key"],
      [doc({ keys: [] }), "no keys"],
      [doc({ keys: [entry({ created: "yesterday" })] }), "RFC 3339"],
      [JSON.stringify([good]), "not a JSON object"],
    ];
    for (const [text, problem] of cases) {
      const file = path.join(freshDir(), "kek.json");
      fs.writeFileSync(file, text, { mode: 0o600 });
      const err = expectCode("FAILED_PRECONDITION", () => loadKeyring(file, { create: true, warn: () => {} }));
      expect(err.message).toContain(file);
      expect(err.message).toContain(problem);
      expect(err.message).not.toContain(good);
      expect(err.message).not.toContain(good.slice(0, 12));
      expect(String(err.cause ?? "")).not.toContain(good.slice(0, 12));
      expect(fs.readFileSync(file, "utf8")).toBe(text); // never "repaired" by overwriting
    }
  });

  it("when a keyring is logged as JSON, then only ids and times appear", () => {
    expect(JSON.stringify(keyring)).not.toContain(K1.key.toString("base64"));
    expect(JSON.stringify(keyring)).toContain(K1.id);
  });
});

describe("KEK rotation", () => {
  it("when the keyring is rotated, then old blobs still open, new seals use the new KEK, and rewrapDek moves a blob to it", () => {
    const file = path.join(freshDir(), "kek.json");
    const before = loadKeyring(file, { create: true, warn: () => {} });
    const old = sealVersion(before, aad, plaintext);

    const after = rotateKeyring(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(`${file}.tmp`)).toBe(false);
    expect(after.keys.map((k) => k.id)).toEqual([before.active.id, after.active.id]);
    expect(after.active.id).not.toBe(before.active.id);
    expect(loadKeyring(file, { create: false, warn: () => {} }).active.id).toBe(after.active.id);

    expect(openVersion(after, aad, old.dek, old.payload)).toEqual(plaintext);
    const fresh = sealVersion(after, aad, plaintext);
    expect(kekIdOf(fresh.dek)).toBe(after.active.id);
    expect(kekIdOf(old.dek)).toBe(before.active.id);

    const moved = rewrapDek(after, aad, old.dek);
    expect(kekIdOf(moved)).toBe(after.active.id);
    const onlyNew = new Keyring([after.active], after.active.id);
    expect(openVersion(onlyNew, aad, moved, old.payload)).toEqual(plaintext);
    expectDataLoss(() => openVersion(onlyNew, aad, old.dek, old.payload));
    expectDataLoss(() => rewrapDek(after, secretAad({ ...row, version: 9 }), old.dek));
  });

  it("when a temp file from another writer exists, then rotation refuses and leaves both files alone", () => {
    const file = path.join(freshDir(), "kek.json");
    loadKeyring(file, { create: true, warn: () => {} });
    const before = fs.readFileSync(file, "utf8");
    fs.writeFileSync(`${file}.tmp`, "in progress");
    const err = expectCode("FAILED_PRECONDITION", () => rotateKeyring(file));
    expect(err.message).toContain(`${file}.tmp`);
    expect(fs.readFileSync(file, "utf8")).toBe(before);
    expect(fs.readFileSync(`${file}.tmp`, "utf8")).toBe("in progress");
  });

  it("when the keyring file does not exist, then rotation fails with FAILED_PRECONDITION and creates nothing", () => {
    const file = path.join(freshDir(), "kek.json");
    expectCode("FAILED_PRECONDITION", () => rotateKeyring(file));
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });
});

describe("data codec", () => {
  it("when a map with empty and binary values is encoded and decoded, then it comes back equal", () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const data = new Map<string, Uint8Array>([
      ["tls.crt", all],
      ["", Buffer.from("empty key")],
      ["empty", new Uint8Array(0)],
      ["ünïcødé", Buffer.from("ok")],
    ]);
    const back = decodeData(encodeData(data));
    expect([...back.keys()]).toEqual(["", "empty", "tls.crt", "ünïcødé"]);
    for (const [k, v] of data) expect(back.get(k)).toEqual(Buffer.from(v));
    expect(decodeData(encodeData(new Map()))).toEqual(new Map());
  });

  it("when the same entries are given in another order or as a record, then the encoding is identical", () => {
    const a = encodeData(new Map([["b", Buffer.from("2")], ["a", Buffer.from("1")]]));
    const b = encodeData(new Map([["a", Buffer.from("1")], ["b", Buffer.from("2")]]));
    const c = encodeData({ b: Buffer.from("2"), a: Buffer.from("1") });
    expect(a.equals(b)).toBe(true);
    expect(a.equals(c)).toBe(true);
    expect(a[0]).toBe(0x01);
  });

  it("when the input is truncated anywhere, has trailing bytes or is not canonical, then decoding fails with DATA_LOSS", () => {
    const enc = encodeData({ a: Buffer.from("one"), b: new Uint8Array(0), c: Buffer.from("three") });
    for (let len = 0; len < enc.length; len++) expectCode("DATA_LOSS", () => decodeData(enc.subarray(0, len)));
    expectCode("DATA_LOSS", () => decodeData(Buffer.concat([enc, Buffer.from([0])])));
    const wrongVersion = Buffer.from(enc);
    wrongVersion[0] = 0x02;
    expectCode("DATA_LOSS", () => decodeData(wrongVersion));
    // Two entries with the same key, written by hand: "a"→"1", "a"→"2".
    const dup = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 1, 97, 0, 0, 0, 1, 49, 0, 0, 0, 1, 97, 0, 0, 0, 1, 50]);
    expectCode("DATA_LOSS", () => decodeData(dup));
    const single = Buffer.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 97, 0, 0, 0, 1, 49]);
    expect(decodeData(single)).toEqual(new Map([["a", Buffer.from("1")]])); // the hand encoding above is the real format
    const unsorted = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 1, 98, 0, 0, 0, 0, 0, 0, 0, 1, 97, 0, 0, 0, 0]);
    expectCode("DATA_LOSS", () => decodeData(unsorted));
  });

  it("when a data map goes through seal and open, then it comes back equal", () => {
    const data = { user: Buffer.from("admin"), pass: Buffer.from(MARKER) };
    const { dek, payload } = sealVersion(keyring, aad, encodeData(data));
    const back = decodeData(openVersion(keyring, aad, dek, payload));
    expect(back.get("pass")).toEqual(data.pass);
    expect(back.get("user")).toEqual(data.user);
  });
});

describe("random pool", () => {
  it("when bytes are drawn across pool refills, then no draw repeats another and draws are not all zero", async () => {
    const { randomBytes: draw } = await import("../../src/crypto/random.js");
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const b = draw(12); // 3000 × 12 bytes crosses the 4 KiB pool several times
      expect(b.length).toBe(12);
      seen.add(b.toString("hex"));
    }
    expect(seen.size).toBe(3000);
    const big = draw(5000);
    expect(big.length).toBe(5000);
    expect(big.equals(Buffer.alloc(5000))).toBe(false);
    const a = draw(32);
    const b = draw(32);
    a.fill(0); // a caller wiping its key must not touch the next draw
    expect(b.equals(Buffer.alloc(32))).toBe(false);
  });
});
