/**
 * The encryption barrier between the domain and storage: a version's data map is
 * sealed under a fresh data key, with additional data binding it to its row (tenant,
 * mesh, name, uid, version), so storage only ever holds opaque bytes.
 */
import { secretAad } from "../crypto/aad.js";
import { decodeData, encodeData } from "../crypto/data-codec.js";
import { openVersion, sealVersion } from "../crypto/envelope.js";
import type { Keyring } from "../crypto/keyring.js";
import type { SecretRow, VersionRow } from "../storage/storage.js";

type RowIdentity = Pick<SecretRow, "tenant" | "mesh" | "name" | "uid">;

export function sealData(
  keyring: Keyring,
  row: RowIdentity,
  version: number,
  data: ReadonlyMap<string, Buffer>,
  now: number,
): VersionRow {
  const aad = secretAad({ tenant: row.tenant, mesh: row.mesh, name: row.name, uid: row.uid, version });
  const { dek, payload } = sealVersion(keyring, aad, encodeData(data));
  return { uid: row.uid, version, keys: [...data.keys()].sort(), dek, payload, createTime: now };
}

/** Throws DATA_LOSS when the blob does not authenticate for this row. */
export function openData(keyring: Keyring, row: RowIdentity, v: VersionRow): Map<string, Buffer> {
  const aad = secretAad({ tenant: row.tenant, mesh: row.mesh, name: row.name, uid: row.uid, version: v.version });
  return decodeData(openVersion(keyring, aad, v.dek, v.payload));
}
