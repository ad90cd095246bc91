/**
 * Scheduled rotation's statements (#30 item 5), for both SQL back-ends. Due secrets are
 * found by an expression index on the `secretd.io/rotation-next` annotation's value (an
 * RFC 3339 UTC time of fixed width, so text order is time order): the database keeps it
 * in the secret's own write transaction, with no write path of its own. rotation_schedule
 * holds, per secret, the due time last tried: its claim and its failures.
 */
import type { DueSecret, ScheduleRow } from "../storage.js";
import { num, type Int } from "./rows.js";
import { dialect, raw, sql } from "./sql.js";

/** The index expression, spelled as each migration's CREATE INDEX (17 on SQLite, 13 on PostgreSQL) so the planner uses it. */
const NEXT = dialect(`json_extract(s.annotations, '$."secretd.io/rotation-next"')`, `((s.annotations::jsonb) ->> 'secretd.io/rotation-next')`);

export interface DueRecord {
  uid: string;
  tenant: string;
  mesh: string;
  name: string;
  etag: string;
  annotations: string;
  due: string;
}

export interface ScheduleRecord {
  secret_uid: string;
  due: string;
  claimed_by: string;
  claim_expire: Int;
  failures: Int;
  last_error: string;
  failed_at: Int;
  retry_at: Int;
}

export const SCHEDULE_SQL = {
  due: sql`SELECT s.uid, s.tenant, s.mesh, s.name, s.etag, s.annotations, ${NEXT} AS due
    FROM secrets s LEFT JOIN rotation_schedule r ON r.secret_uid = s.uid AND r.due = ${NEXT}
    WHERE ${NEXT} IS NOT NULL AND ${NEXT} <= ${"now_iso::text"}
      AND (r.secret_uid IS NULL OR (r.claim_expire <= ${"now::bigint"} AND r.retry_at <= ${"now::bigint"}))
    ORDER BY ${NEXT} LIMIT ${"limit"}`,
  // A new due time starts over; the same one is taken only once its claim lapsed and its retry time passed.
  claim: sql`INSERT INTO rotation_schedule (secret_uid, due, claimed_by, claim_expire, failures, last_error, failed_at, retry_at)
    VALUES (${"uid::text"}, ${"due::text"}, ${"claimer::text"}, ${"expire::bigint"}, 0, '', 0, 0)
    ON CONFLICT (secret_uid) DO UPDATE SET due = excluded.due, claimed_by = excluded.claimed_by, claim_expire = excluded.claim_expire,
      failures = CASE WHEN rotation_schedule.due = excluded.due THEN rotation_schedule.failures ELSE 0 END, retry_at = 0
    WHERE rotation_schedule.due <> excluded.due OR (rotation_schedule.claim_expire <= ${"now::bigint"} AND rotation_schedule.retry_at <= ${"now::bigint"})`,
  release: sql`UPDATE rotation_schedule SET claim_expire = 0 WHERE secret_uid = ${"uid"} AND claimed_by = ${"claimer"}`,
  fail: sql`UPDATE rotation_schedule SET claim_expire = 0, failures = failures + 1, last_error = ${"error"}, failed_at = ${"failed_at"}, retry_at = ${"retry_at"}
    WHERE secret_uid = ${"uid"} AND claimed_by = ${"claimer"}`,
  read: sql`SELECT ${raw("secret_uid, due, claimed_by, claim_expire, failures, last_error, failed_at, retry_at")} FROM rotation_schedule WHERE secret_uid = ${"uid"}`,
};

export function toDue(r: DueRecord): DueSecret {
  return { uid: r.uid, tenant: r.tenant, mesh: r.mesh, name: r.name, etag: r.etag, annotations: JSON.parse(r.annotations) as Record<string, string>, due: r.due };
}

export function toSchedule(r: ScheduleRecord): ScheduleRow {
  return {
    secretUid: r.secret_uid,
    due: r.due,
    claimedBy: r.claimed_by,
    claimExpire: num(r.claim_expire),
    failures: num(r.failures),
    lastError: r.last_error,
    failedAt: num(r.failed_at),
    retryAt: num(r.retry_at),
  };
}
