/**
 * A rotation's retire hook: its rotator is run with `retire` and the previous version's
 * values, just before the driver destroys that version (rotation-driver.ts).
 */
import type { KeyringSource } from "../crypto/keyring.js";
import type { RotationRow, Storage } from "../storage/storage.js";
import { openData } from "./barrier.js";
import type { Rotator, RotatorOutcome } from "./exec-rotator.js";

export function retireHookOf(storage: Storage, keyring: KeyringSource, rotators: ReadonlyMap<string, Rotator>): (r: RotationRow) => Promise<RotatorOutcome> {
  return async (r) => {
    const rotator = rotators.get(r.rotator);
    if (rotator === undefined) return { ok: false, reason: `this server has no ${r.rotator} rotator` };
    const row = await storage.readSecret({ tenant: r.tenant, mesh: r.mesh }, r.name, r.previousVersion, true);
    if (row?.version === undefined || row.secret.uid !== r.secretUid) return { ok: false, reason: `version ${r.previousVersion} is no longer stored` };
    const data = openData(keyring, row.secret, row.version);
    try {
      return await rotator("retire", { tenant: r.tenant, mesh: r.mesh, name: r.name, version: r.previousVersion, annotations: row.secret.annotations }, data);
    } finally {
      for (const v of data.values()) v.fill(0);
    }
  };
}
