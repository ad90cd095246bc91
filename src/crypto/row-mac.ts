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
import { SecretdError } from "../domain/errors.js";
import { kekDerivedKey } from "./kek-derived-key.js";
import { isKeyId, type Kek, type KeyringSource } from "./keyring.js";

const FORMAT = 0x01;
const TAG_BYTES = 32;
const INFO = "secretd/row-mac/v1";

export function rowMac(kek: Kek, input: Uint8Array): Buffer {
  const id = Buffer.from(kek.id, "latin1");
  const out = Buffer.allocUnsafe(2 + id.length + TAG_BYTES);
  out[0] = FORMAT;
  out[1] = id.length;
  id.copy(out, 2);
  createHmac("sha256", kekDerivedKey(kek, INFO)).update(input).digest().copy(out, 2 + id.length);
  return out;
}

/** The KEK id a MAC names; undefined when the bytes are not a MAC. */
export function macKekId(mac: Uint8Array): string | undefined {
  if (mac.length < 2 || mac[0] !== FORMAT) return undefined;
  const idLen = mac[1]!;
  if (mac.length !== 2 + idLen + TAG_BYTES) return undefined;
  const id = Buffer.from(mac.subarray(2, 2 + idLen)).toString("latin1");
  return isKeyId(id) ? id : undefined;
}

/** Throws DATA_LOSS unless `mac` is present and is the MAC of `input` under the KEK it names. */
export function verifyRowMac(keys: KeyringSource, mac: Uint8Array | undefined, input: Uint8Array, what: string): void {
  const fail = (why: string): never => {
    throw new SecretdError("DATA_LOSS", "stored secret data failed to authenticate", { cause: new Error(`${what}: ${why}`) });
  };
  if (mac === undefined || mac === null) return fail("no MAC");
  const id = macKekId(mac);
  if (id === undefined) return fail("malformed MAC");
  // holding(): the KEK may have been added by a rotation in another process.
  const kek = keys.holding(id).get(id);
  if (kek === undefined) return fail(`MAC names unknown KEK ${id}`);
  const want = rowMac(kek, input);
  if (!timingSafeEqual(want, Buffer.from(mac.buffer, mac.byteOffset, mac.byteLength))) fail("MAC mismatch");
}
