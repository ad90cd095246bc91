/**
 * Keeping stored row MACs right outside the read and write paths:
 *
 * - backfill: a database made before migration 7 has rows without MACs. At start, once,
 *   in one back-end transaction, every row gets its MAC under the active KEK (the
 *   back-end only does this while migration 7's mark is there and no row has a MAC yet).
 *   After that a missing MAC is DATA_LOSS like a wrong one, so nulling the column is no
 *   way around the check.
 * - audit (`secretd doctor`): every check a read makes, on every row, reported per row.
 * - re-key: after a KEK rotation, MACs made under an older KEK are checked under it and
 *   made again under the active one, a batch per transaction, each a compare-and-set on
 *   the old bytes. Until then they stay valid: a MAC names the KEK that made it. A row
 *   whose MAC does not check (or is missing) is reported and left alone, never re-MACed.
 */
import { macKekId } from "../crypto/row-mac.js";
import type { KeyringSource } from "../crypto/keyring.js";
import type { MacReplacement, MacRows, Storage } from "../storage/storage.js";
import { SecretdError } from "../errors.js";
import { checkGrants, checkRequest, checkSecret, checkVersion, signGrants, signRequest, signSecret, signVersion } from "./row-macs.js";

export type MacStorage = Pick<Storage, "listMacRows" | "replaceMacs" | "backfillMacs">;

/** Gives every row of a pre-MAC database its MAC; the count, "none" or "refused" (see Storage.backfillMacs). */
export async function backfillRowMacs(storage: MacStorage, keys: KeyringSource): Promise<number | "none" | "refused"> {
  return storage.backfillMacs((all) => {
    const out: MacReplacement[] = [];
    for (const r of all) {
      const uid = r.secret.uid;
      out.push({ kind: "secret", uid, old: undefined, next: signSecret(keys, r.secret) });
      out.push({ kind: "grants", uid, old: undefined, next: signGrants(keys, uid, r.grants) });
      for (const v of r.versions) out.push({ kind: "version", uid, version: v.version, old: undefined, next: signVersion(keys, v) });
      for (const q of r.requests) out.push({ kind: "request", tenant: q.tenant, sub: q.sub, requestId: q.requestId, old: undefined, next: signRequest(keys, q.tenant, q) });
    }
    return out;
  });
}

/** A secret with a row whose MAC did not check, left as it was. */
export interface UnauthenticatedSecret {
  readonly uid: string;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
}

export interface RekeyResult {
  readonly examined: number;
  readonly rekeyed: number;
  /** Replacements not applied: the row changed meanwhile (a later pass picks it up). */
  readonly missed: number;
  readonly unauthenticated: readonly UnauthenticatedSecret[];
}

/** One pass over every secret, re-making MACs not made under the active KEK. */
export async function rekeyRowMacs(storage: MacStorage, keys: KeyringSource, batchSize: number): Promise<RekeyResult> {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new SecretdError("INVALID_ARGUMENT", "batch size must be a positive integer");
  let examined = 0;
  let rekeyed = 0;
  let missed = 0;
  const unauthenticated: UnauthenticatedSecret[] = [];
  let after = "";
  for (;;) {
    const rows = await storage.listMacRows(after, batchSize);
    const last = rows.at(-1);
    if (last === undefined) break;
    after = last.secret.uid;
    examined += rows.length;
    const batch: MacReplacement[] = [];
    for (const r of rows) {
      try {
        batch.push(...rekeyed1(keys, r));
      } catch (err) {
        if (!(err instanceof SecretdError) || err.code !== "DATA_LOSS") throw err;
        const { uid, tenant, mesh, name } = r.secret;
        unauthenticated.push({ uid, tenant, mesh, name });
      }
    }
    if (batch.length > 0) {
      const applied = await storage.replaceMacs(batch);
      rekeyed += applied;
      missed += batch.length - applied;
    }
    if (rows.length < batchSize) break;
  }
  return { examined, rekeyed, missed, unauthenticated };
}

/** The replacements one secret needs; DATA_LOSS (nothing replaced) when any of its MACs does not check. */
function rekeyed1(keys: KeyringSource, r: MacRows): MacReplacement[] {
  const active = keys.current().active.id;
  const stale = (mac: Uint8Array | undefined): boolean => mac === undefined || macKekId(mac) !== active;
  const uid = r.secret.uid;
  const out: MacReplacement[] = [];
  if (stale(r.secret.mac)) {
    checkSecret(keys, r.secret);
    out.push({ kind: "secret", uid, old: r.secret.mac, next: signSecret(keys, r.secret) });
  }
  if (stale(r.secret.grantsMac)) {
    checkGrants(keys, uid, r.grants, r.secret.grantsMac);
    out.push({ kind: "grants", uid, old: r.secret.grantsMac, next: signGrants(keys, uid, r.grants) });
  }
  for (const v of r.versions) {
    if (!stale(v.mac)) continue;
    checkVersion(keys, v);
    out.push({ kind: "version", uid, version: v.version, old: v.mac, next: signVersion(keys, v) });
  }
  for (const q of r.requests) {
    if (!stale(q.mac)) continue;
    checkRequest(keys, q.tenant, q);
    out.push({ kind: "request", tenant: q.tenant, sub: q.sub, requestId: q.requestId, old: q.mac, next: signRequest(keys, q.tenant, q) });
  }
  return out;
}

/**
 * The checks a read makes (AuthenticatedStorage), on every row of one secret: what fails,
 * one line each (row kinds, uids, version numbers and KEK ids; never a value). Empty when
 * every row checks.
 */
export function auditRowMacs(keys: KeyringSource, r: MacRows): string[] {
  const problems: string[] = [];
  const check = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof SecretdError) || err.code !== "DATA_LOSS") throw err;
      problems.push(err.cause instanceof Error ? err.cause.message : err.message);
    }
  };
  const uid = r.secret.uid;
  check(() => checkSecret(keys, r.secret));
  check(() => checkGrants(keys, uid, r.grants, r.secret.grantsMac));
  const latest = Math.max(0, ...r.versions.map((v) => v.version));
  if (latest > r.secret.version) problems.push(`secret row ${uid} points at version ${r.secret.version} while version ${latest} is stored (rollback)`);
  for (const v of r.versions) check(() => checkVersion(keys, v));
  for (const q of r.requests) check(() => checkRequest(keys, q.tenant, q));
  return problems;
}
