/**
 * Envelope encryption of one secret version: a fresh 256-bit data key (DEK) per seal,
 * AES-256-GCM with a 12-byte random nonce and a 16-byte tag.
 *
 *   payload     = 0x01 | nonce(12) | ciphertext | tag(16)            AAD: 0x01 | aad
 *   wrapped DEK = 0x01 | idLen(1) | kekId | nonce(12) | enc DEK(32) | tag(16)
 *                                                        AAD: 0x01 | idLen | kekId | aad
 *
 * Sealing uses the active KEK; opening uses whichever KEK the wrapped DEK names. Every
 * failure to open is DATA_LOSS with one fixed message (the detail goes to `cause`), so
 * callers cannot tell a wrong key from a tampered byte.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { SecretdError } from "../errors.js";
import { isKeyId, type Kek, type Keyring, type KeyringSource } from "./keyring.js";
import { randomBytes } from "./random.js";

const FORMAT = 0x01;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const ALG = "aes-256-gcm";

export interface SealedVersion {
  /** The wrapped data key. */
  readonly dek: Buffer;
  readonly payload: Buffer;
}

export function sealVersion(keyring: Keyring, aad: Buffer, plaintext: Uint8Array): SealedVersion {
  const dataKey = randomBytes(KEY_BYTES);
  try {
    const header = Buffer.from([FORMAT]);
    return {
      dek: wrap(keyring.active, aad, dataKey),
      payload: Buffer.concat([header, seal(dataKey, header, aad, plaintext)]),
    };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * The plaintext; DATA_LOSS when anything does not authenticate for this `aad`. The data
 * key comes from the current keyring's cache when this wrapped key was opened under this
 * `aad` before; otherwise it is unwrapped with the KEK the blob names (see unwrap), and
 * cached only once the payload opened with it.
 */
export function openVersion(keys: KeyringSource, aad: Buffer, dek: Uint8Array, payload: Uint8Array): Buffer {
  return authenticated(() => {
    const cached = keys.current().dataKeys.get(dek, aad);
    const dataKey = cached ?? unwrap(keys, aad, dek);
    let keep = cached !== undefined;
    try {
      if (payload.length < 1 + NONCE_BYTES + TAG_BYTES) throw new Error("payload too short");
      if (payload[0] !== FORMAT) throw new Error(`unknown payload format ${payload[0]}`);
      const plaintext = open(dataKey, payload.subarray(0, 1), aad, payload.subarray(1));
      // After an unwrap that made the source re-read its file, current() is the keyring that holds the KEK.
      keep ||= keys.current().dataKeys.add(dek, aad, dataKey);
      return plaintext;
    } finally {
      if (!keep) dataKey.fill(0);
    }
  });
}

/** The id of the KEK that wrapped this data key; DATA_LOSS when the blob is malformed. */
export function kekIdOf(dek: Uint8Array): string {
  return authenticated(() => parseWrapped(dek).kekId);
}

/** Unwraps with the KEK the blob names and wraps again with the active KEK (KEK rotation). */
export function rewrapDek(keyring: Keyring, aad: Buffer, dek: Uint8Array): Buffer {
  return authenticated(() => {
    const dataKey = unwrap(keyring, aad, dek);
    try {
      return wrap(keyring.active, aad, dataKey);
    } finally {
      dataKey.fill(0);
    }
  });
}

function wrap(kek: Kek, aad: Buffer, dataKey: Buffer): Buffer {
  const id = Buffer.from(kek.id, "utf8");
  const header = Buffer.concat([Buffer.from([FORMAT, id.length]), id]);
  return Buffer.concat([header, seal(kek.key, header, aad, dataKey)]);
}

/**
 * The plain data key; the caller wipes it. The KEK is the one the blob names, from a
 * keyring that holds it if the source can get one (a file-backed source re-reads its
 * file for a KEK added by `keys rotate` in another process).
 */
function unwrap(keys: KeyringSource, aad: Buffer, dek: Uint8Array): Buffer {
  const { kekId, header, sealed } = parseWrapped(dek);
  const kek = keys.holding(kekId).get(kekId);
  if (kek === undefined) throw new Error(`unknown KEK id ${kekId}`);
  const dataKey = open(kek.key, header, aad, sealed);
  if (dataKey.length !== KEY_BYTES) throw new Error("data key has the wrong length");
  return dataKey;
}

function parseWrapped(dek: Uint8Array): { kekId: string; header: Uint8Array; sealed: Uint8Array } {
  if (dek.length < 2) throw new Error("wrapped data key too short");
  if (dek[0] !== FORMAT) throw new Error(`unknown wrapped data key format ${dek[0]}`);
  const idLen = dek[1]!;
  if (dek.length !== 2 + idLen + NONCE_BYTES + KEY_BYTES + TAG_BYTES) throw new Error("wrapped data key has the wrong length");
  const kekId = Buffer.from(dek.subarray(2, 2 + idLen)).toString("latin1");
  if (!isKeyId(kekId)) throw new Error("wrapped data key names an invalid KEK id");
  return { kekId, header: dek.subarray(0, 2 + idLen), sealed: dek.subarray(2 + idLen) };
}

/** nonce | ciphertext | tag, authenticated over header | aad. */
function seal(key: Buffer, header: Uint8Array, aad: Buffer, plaintext: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(ALG, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.concat([header, aad]));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]);
}

/** Inverse of seal; the tag length is checked here, not left to Node (which accepts short tags). */
function open(key: Buffer, header: Uint8Array, aad: Buffer, sealed: Uint8Array): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new Error("sealed data too short");
  const nonce = sealed.subarray(0, NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const decipher = createDecipheriv(ALG, key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(Buffer.concat([header, aad]));
  decipher.setAuthTag(tag);
  const out = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  try {
    decipher.final(); // GCM yields no bytes here; it throws when the tag does not match
  } catch (err) {
    out.fill(0);
    throw err;
  }
  return out;
}

function authenticated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new SecretdError("DATA_LOSS", "stored secret data failed to authenticate", { cause: err });
  }
}
