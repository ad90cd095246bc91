/**
 * Keys derived from a KEK with HKDF-SHA256, one per purpose (`info`), so a MAC key is
 * never the KEK itself and two purposes never share a key. Derived once per KEK object
 * and purpose (a keyring reload makes new KEK objects, and the old entries go with them),
 * as a KeyObject: an HMAC keyed by one skips importing raw key bytes per call.
 */
import { createSecretKey, hkdfSync, type KeyObject } from "node:crypto";
import type { Kek } from "./keyring.js";

const derived = new WeakMap<Kek, Map<string, KeyObject>>();

export function kekDerivedKey(kek: Kek, info: string): KeyObject {
  let byInfo = derived.get(kek);
  if (byInfo === undefined) derived.set(kek, (byInfo = new Map()));
  let key = byInfo.get(info);
  if (key === undefined) byInfo.set(info, (key = createSecretKey(Buffer.from(hkdfSync("sha256", kek.key, Buffer.alloc(0), info, 32)))));
  return key;
}
