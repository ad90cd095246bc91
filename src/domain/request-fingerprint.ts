/**
 * A keyed digest of a CreateSecret request, so a retry with the same request_id can be
 * recognised as the same request without storing its values: a plain hash of a short
 * password could be brute-forced from the database, an HMAC under a key derived from a
 * KEK cannot. The KEK id is kept with the digest, so it stays checkable after rotation.
 */
import { createHmac, timingSafeEqual, type KeyObject } from "node:crypto";
import { kekDerivedKey } from "../crypto/kek-derived-key.js";
import { lengthPrefixed, type Part } from "../crypto/length-prefixed.js";
import type { Kek, KeyringSource } from "../crypto/keyring.js";
import { SecretdError } from "../errors.js";

export interface FingerprintInput {
  readonly sub: string;
  readonly mesh: string;
  readonly name: string;
  readonly type: string;
  readonly description: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly immutable: boolean;
  readonly expireTime: number | undefined;
  readonly data: ReadonlyMap<string, Buffer>;
}

function macKey(kek: Kek): KeyObject {
  return kekDerivedKey(kek, "secretd/create-request-fingerprint/v1");
}

function digest(key: KeyObject, r: FingerprintInput): string {
  const parts: Part[] = [r.sub, r.mesh, r.name, r.type, r.description, String(r.immutable), String(r.expireTime ?? "")];
  const map = (m: Iterable<[string, string | Uint8Array]>): void => {
    const entries = [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    parts.push(String(entries.length));
    for (const [k, v] of entries) parts.push(k, v);
  };
  map(Object.entries(r.labels));
  map(Object.entries(r.annotations));
  map(r.data.entries());
  return createHmac("sha256", key).update(lengthPrefixed(parts)).digest("hex");
}

export function requestFingerprint(keys: KeyringSource, r: FingerprintInput): string {
  const active = keys.current().active;
  return `${active.id}:${digest(macKey(active), r)}`;
}

/** True when `stored` is the fingerprint of `r` (under whichever KEK made it). */
export function sameRequest(keys: KeyringSource, stored: string, r: FingerprintInput): boolean {
  const at = stored.lastIndexOf(":");
  const id = stored.slice(0, at);
  // holding(): the KEK may have been added by a rotation in another process.
  const kek = keys.holding(id).get(id);
  if (!kek) throw new SecretdError("FAILED_PRECONDITION", "request_id was recorded under a key-encryption key that is no longer in the keyring");
  const want = Buffer.from(stored.slice(at + 1), "hex");
  const got = Buffer.from(digest(macKey(kek), r), "hex");
  return want.length === got.length && timingSafeEqual(want, got);
}
