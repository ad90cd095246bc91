/**
 * Keys derived from a KEK with HKDF-SHA256, one per purpose (`info`), so a MAC key is
 * never the KEK itself and two purposes never share a key. Derived once per KEK object
 * and purpose (a keyring reload makes new KEK objects, and the old entries go with them).
 */
import { hkdfSync } from "node:crypto";
import type { Kek } from "./keyring.js";

const derived = new WeakMap<Kek, Map<string, Buffer>>();

export function kekDerivedKey(kek: Kek, info: string): Buffer {
  let byInfo = derived.get(kek);
  if (byInfo === undefined) derived.set(kek, (byInfo = new Map()));
  let key = byInfo.get(info);
  if (key === undefined) byInfo.set(info, (key = Buffer.from(hkdfSync("sha256", kek.key, Buffer.alloc(0), info, 32))));
  return key;
}
