/**
 * doctor's row-MAC pass: every secret's metadata, grants, versions and create requests
 * checked against their MACs (src/domain/row-macs.ts) with the keyring, as the server
 * checks them on each read. A row edited outside secretd (an owner swapped, a grant
 * added, a version rolled back) opens fine as a blob but fails here; each such secret is
 * named, nothing is re-MACed. Runs only on a schema this build knows, so opening the
 * store never migrates anything.
 */
import type { Keyring } from "../crypto/keyring.js";
import { auditRowMacs } from "../domain/row-mac-maintenance.js";
import type { Storage } from "../storage/storage.js";

const BATCH = 200;

export interface RowMacResult {
  readonly examined: number;
  /** One line per secret whose rows do not check. */
  readonly failures: readonly string[];
}

export async function checkRowMacs(storage: Pick<Storage, "listMacRows">, keys: Keyring): Promise<RowMacResult> {
  let examined = 0;
  const failures: string[] = [];
  let after = "";
  for (;;) {
    const rows = await storage.listMacRows(after, BATCH);
    for (const r of rows) {
      examined++;
      const problems = auditRowMacs(keys, r);
      if (problems.length === 0) continue;
      const { tenant, mesh, name, uid } = r.secret;
      failures.push(`tenant "${tenant}" mesh "${mesh}" secret "${name}" (uid ${uid}): ${problems.join("; ")}`);
    }
    const last = rows.at(-1);
    if (last === undefined || rows.length < BATCH) break;
    after = last.secret.uid;
  }
  return { examined, failures };
}
