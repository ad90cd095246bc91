/**
 * The decisions every SQL back-end's writes make, written once: each back-end runs the
 * statements (better-sqlite3 synchronously, pg asynchronously) and asks these which to run
 * and what the rows it read mean. Pure: no I/O, no driver types.
 */
import { SecretdError } from "../../errors.js";
import type { AuditQuery, DekReplacement, GrantsMacGuard, MacReplacement } from "../storage.js";
import { blob, sameBytes } from "./rows.js";
import type { Sql } from "./sql.js";
import { SQL } from "./statements.js";

/**
 * The grant MAC guard, on the secret row as read (locked) in the write's transaction:
 * "missing" when the secret is gone, "conflict" when its grant set is no longer the one
 * the writer signed over (another grant write came between), else "write".
 */
export function grantGuard(stored: { grants_mac: Buffer | null } | undefined, guard: GrantsMacGuard | undefined): "missing" | "conflict" | "write" {
  if (stored === undefined) return "missing";
  if (guard !== undefined && !sameBytes(stored.grants_mac, guard.expect)) return "conflict";
  return "write";
}

/** A compare-and-set that matched no row: the row is there with another etag ("conflict"), or gone ("missing"). */
export function conflictOrMissing(exists: boolean): "conflict" | "missing" {
  return exists ? "conflict" : "missing";
}

/**
 * One MAC compare-and-set: its statement, its binds (the bytes expected, NULL for none,
 * and the bytes to store) and the uid it re-keys in the read cache (none for a
 * create-request MAC, which is not cached).
 */
export function macStatement(r: MacReplacement): { sql: Sql; binds: Record<string, unknown>; uid: string | undefined } {
  const swap = { old: blob(r.old), next: Buffer.from(r.next) };
  if (r.kind === "request") return { sql: SQL.replaceRequestMac, binds: { ...swap, tenant: r.tenant, sub: r.sub, request_id: r.requestId }, uid: undefined };
  if (r.kind === "version") return { sql: SQL.replaceVersionMac, binds: { ...swap, uid: r.uid, version: r.version }, uid: r.uid };
  return { sql: r.kind === "grants" ? SQL.replaceGrantsMac : SQL.replaceSecretMac, binds: { ...swap, uid: r.uid }, uid: r.uid };
}

/** One data-key compare-and-set (a KEK rotation's rewrap) as the binds of SQL.replaceDek. */
export function dekSwap(r: DekReplacement): { uid: string; version: number; old_dek: Buffer; new_dek: Buffer } {
  return { uid: r.uid, version: r.version, old_dek: Buffer.from(r.oldDek), new_dek: Buffer.from(r.newDek) };
}

/**
 * The secrets a batch of compare-and-sets re-keyed: each gets one "secret-rekeyed" change,
 * so every process's read cache (and any watch) re-reads it. Request MACs are not cached.
 */
export class Rekeyed {
  applied = 0;
  readonly uids = new Set<string>();

  /** Counts `n` rows written by one replacement of `uid` (undefined for a request MAC). */
  note(uid: string | undefined, n: number): void {
    this.applied += n;
    if (n > 0 && uid !== undefined) this.uids.add(uid);
  }
}

/**
 * The backfill gate: the "backfill pending" mark is plain SQL anyone with the database
 * could re-create, so it is honoured only while no row is authenticated yet (as the
 * migration that added row MACs leaves a database).
 */
export function backfillGate(pending: boolean, anyMac: boolean): "none" | "refused" | "backfill" {
  if (!pending) return "none";
  return anyMac ? "refused" : "backfill";
}

/** The backfill ran in one transaction: every replacement it computed must have applied. */
export function assertBackfillApplied(applied: number, replacements: readonly MacReplacement[]): void {
  if (applied !== replacements.length) throw new SecretdError("INTERNAL", "row MAC backfill: a row changed during its own transaction");
}

/** The rows the backfill hands to `compute`: all of them. */
export const ALL_ROWS = Number.MAX_SAFE_INTEGER;

/**
 * ListAuditEvents' bounds, always given (no "IS NULL OR" on time), so the (tenant, time)
 * index serves the range and the (time, id) order; `by` names the index a sub or name
 * filter seeks instead of scanning the tenant's events (#27 item 6).
 */
export interface AuditBounds {
  readonly by: "time" | "sub" | "name";
  readonly lo: number;
  readonly hi: number;
  readonly afterTime: number;
  readonly afterId: number;
  readonly mesh: string | null;
  readonly name: string | null;
  readonly sub: string | null;
  readonly meshes: readonly string[] | null;
  readonly limit: number;
}

export function auditBounds(q: AuditQuery): AuditBounds {
  return {
    by: q.sub !== undefined ? "sub" : q.name !== undefined ? "name" : "time",
    // Keyset: (time, id) > after implies time >= after.time, so the lower bound takes both.
    lo: Math.max(q.since ?? 0, q.after?.time ?? 0),
    hi: q.until ?? Number.MAX_SAFE_INTEGER,
    afterTime: q.after?.time ?? -1,
    afterId: q.after?.id ?? -1,
    mesh: q.mesh ?? null,
    name: q.name ?? null,
    sub: q.sub ?? null,
    meshes: q.meshes === undefined ? null : [...q.meshes],
    limit: q.limit,
  };
}
