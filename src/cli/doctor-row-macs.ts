/**
 * doctor's row-MAC pass: every secret's metadata, grants, versions and create requests
 * checked against their MACs (src/domain/row-macs.ts) with the keyring, as the server
 * checks them on each read. A row edited outside secretd (an owner swapped, a grant
 * added, a version rolled back) opens fine as a blob but fails here; each such secret is
 * named, nothing is re-MACed. Runs only on a schema this build knows, so opening the
 * store never migrates anything.
 */
import type { Keyring } from "../crypto/keyring.js";
import { checkGrants, checkRequest, checkSecret, checkVersion } from "../domain/row-macs.js";
import { SecretdError } from "../domain/errors.js";
import type { MacRows, Storage } from "../storage/storage.js";

const BATCH = 200;

export interface RowMacResult {
  readonly examined: number;
  /** One line per secret whose rows do not check. */
  readonly failures: readonly string[];
}

function check1(keys: Keyring, r: MacRows): void {
  const uid = r.secret.uid;
  checkSecret(keys, r.secret);
  checkGrants(keys, uid, r.grants, r.secret.grantsMac);
  for (const v of r.versions) checkVersion(keys, v);
  for (const q of r.requests) checkRequest(keys, q.tenant, q);
}

export async function checkRowMacs(storage: Pick<Storage, "listMacRows">, keys: Keyring): Promise<RowMacResult> {
  let examined = 0;
  const failures: string[] = [];
  let after = "";
  for (;;) {
    const rows = await storage.listMacRows(after, BATCH);
    for (const r of rows) {
      examined++;
      try {
        check1(keys, r);
      } catch (err) {
        if (!(err instanceof SecretdError)) throw err;
        const { tenant, mesh, name, uid } = r.secret;
        failures.push(`tenant "${tenant}" mesh "${mesh}" secret "${name}" (uid ${uid}): ${err.code}: ${err.message}`);
      }
    }
    const last = rows.at(-1);
    if (last === undefined || rows.length < BATCH) break;
    after = last.secret.uid;
  }
  return { examined, failures };
}
