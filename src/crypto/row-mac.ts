/**
 * A MAC over a stored row, under a key derived from a KEK (HKDF, see kek-derived-key.ts),
 * so someone who can write the database but has no KEK cannot forge or alter a row:
 *
 *   mac = 0x01 | idLen(1) | kekId | HMAC-SHA256(derived key, input)(32)
 *
 * The KEK id is inside, so a MAC made under an older KEK stays checkable after a
 * rotation (until `keys rotate` re-keys it). Every failure is DATA_LOSS with the one
 * message a ciphertext that does not open gets, so a caller cannot tell them apart.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { SecretdError } from "../errors.js";
import { kekDerivedKey } from "./kek-derived-key.js";
import { isKeyId, type Kek, type Keyring, type KeyringSource } from "./keyring.js";

const FORMAT = 0x01;
const TAG_BYTES = 32;
const INFO = "secretd/row-mac/v1";

export function rowMac(kek: Kek, input: string): Buffer {
  const id = Buffer.from(kek.id, "latin1");
  const out = Buffer.allocUnsafe(2 + id.length + TAG_BYTES);
  out[0] = FORMAT;
  out[1] = id.length;
  id.copy(out, 2);
  tagOf(kek, input).copy(out, 2 + id.length);
  return out;
}

function tagOf(kek: Kek, input: string): Buffer {
  return createHmac("sha256", kekDerivedKey(kek, INFO)).update(input, "utf8").digest();
}

/** The KEK id a MAC names; undefined when the bytes are not a MAC. */
export function macKekId(mac: Uint8Array): string | undefined {
  if (mac.length < 2 || mac[0] !== FORMAT) return undefined;
  const idLen = mac[1]!;
  if (mac.length !== 2 + idLen + TAG_BYTES) return undefined;
  const id = Buffer.from(mac.buffer, mac.byteOffset + 2, idLen).toString("latin1");
  return isKeyId(id) ? id : undefined;
}

/** Throws DATA_LOSS unless `mac` is present and is the MAC of `input` under the KEK it names. */
export function verifyRowMac(keys: KeyringSource, mac: Uint8Array | undefined, input: string, what: string): void {
  const fail = (why: string): never => {
    throw new SecretdError("DATA_LOSS", "stored secret data failed to authenticate", { cause: new Error(`${what}: ${why}`) });
  };
  if (mac === undefined || mac === null) return fail("no MAC");
  const id = macKekId(mac);
  if (id === undefined) return fail("malformed MAC");
  // holding(): the KEK may have been added by a rotation in another process.
  const ring = keys.holding(id);
  const kek = ring.get(id);
  if (kek === undefined) return fail(`MAC names unknown KEK ${id}`);
  const memo = memoOf(ring);
  const memoKey = Buffer.from(mac.buffer, mac.byteOffset, mac.byteLength).toString("latin1");
  if (memo.get(memoKey) === input) return;
  const stored = Buffer.from(mac.buffer, mac.byteOffset + 2 + id.length, TAG_BYTES);
  if (!timingSafeEqual(tagOf(kek, input), stored)) fail("MAC mismatch");
  memo.delete(memoKey);
  memo.set(memoKey, input);
  if (memo.size > VERIFIED_MEMO_ENTRIES) memo.delete(memo.keys().next().value as string);
}

/**
 * MACs already checked, with the exact text they were checked over, per keyring (a
 * keyring change starts an empty one). A row read again with the same MAC and the same
 * content is then known good without another HMAC: listing reads every row from SQLite
 * each time. A hit needs the same MAC bytes and an equal text, so it can only confirm what
 * the HMAC confirmed. Bounded (insertion order, oldest out); ~0.5 KB an entry.
 */
const VERIFIED_MEMO_ENTRIES = 4096;
const memos = new WeakMap<Keyring, Map<string, string>>();

function memoOf(ring: Keyring): Map<string, string> {
  let m = memos.get(ring);
  if (m === undefined) memos.set(ring, (m = new Map()));
  return m;
}
