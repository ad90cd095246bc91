/**
 * The encryption barrier between the domain and storage: a version's data map is
 * sealed under a fresh data key, with additional data binding it to its row (tenant,
 * mesh, name, uid, version), so storage only ever holds opaque bytes. The keyring is
 * asked for per call (KeyringSource), because a KEK rotation may change it while the
 * server runs.
 */
import { secretAad } from "../crypto/aad.js";
import { decodeData, encodeData } from "../crypto/data-codec.js";
import { openVersion, sealVersion } from "../crypto/envelope.js";
import type { KeyringSource } from "../crypto/keyring.js";
import type { PlaintextCache } from "../crypto/plaintext-cache.js";
import type { SecretRow, VersionRow } from "../storage/storage.js";

type RowIdentity = Pick<SecretRow, "tenant" | "mesh" | "name" | "uid">;

export function sealData(
  keys: KeyringSource,
  row: RowIdentity,
  version: number,
  data: ReadonlyMap<string, Buffer>,
  now: number,
): VersionRow {
  const aad = secretAad({ tenant: row.tenant, mesh: row.mesh, name: row.name, uid: row.uid, version });
  const { dek, payload } = sealVersion(keys.current(), aad, encodeData(data));
  return { uid: row.uid, version, keys: [...data.keys()].sort(), dek, payload, createTime: now };
}

/**
 * Throws DATA_LOSS when the blob does not authenticate for this row. With a cache, an
 * exact row and blob opened before is not decrypted again (see PlaintextCache). The
 * values returned are always the caller's own copies.
 */
export function openData(keys: KeyringSource, row: RowIdentity, v: VersionRow, cache?: PlaintextCache): Map<string, Buffer> {
  const hit = cache?.get(keys.current(), row, v);
  if (hit !== undefined) return decodeData(hit);
  const aad = secretAad({ tenant: row.tenant, mesh: row.mesh, name: row.name, uid: row.uid, version: v.version });
  const plaintext = openVersion(keys, aad, v.dek, v.payload);
  try {
    const data = decodeData(plaintext);
    // current() again: an unwrap that re-read the KEK file may have replaced the keyring.
    if (cache?.add(keys.current(), row, v, plaintext) === true) return data;
    plaintext.fill(0);
    return data;
  } catch (err) {
    plaintext.fill(0);
    throw err;
  }
}
