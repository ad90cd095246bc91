/**
 * The audit writes on PostgreSQL (append a batch, prune by time, prune by size), the
 * counterpart of sqlite-audit-writes.ts: each keeps audit_usage (the sum of the events'
 * sizes, audit-row-bytes.ts) in step in the same statement or transaction.
 */
import type pg from "pg";
import { auditKeysJson, auditRowBytes } from "../audit-row-bytes.js";
import type { AuditRow } from "../storage.js";
import { int8Array, textArray } from "./pg-binary-arrays.js";

/** What the writes need of PostgresStorage: its statement runner and its transactions (errors in secretd's vocabulary). */
export interface PgRunner {
  q<R extends pg.QueryResultRow>(text: string, values?: unknown[], on?: Pick<pg.PoolClient, "query">): Promise<pg.QueryResult<R>>;
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
}

export interface PostgresAuditWrites {
  append(events: readonly AuditRow[]): Promise<void>;
  prune(before: number, limit: number): Promise<number>;
  /** Deletes the oldest events, at most `limit`, until the stored size is at most `maxBytes`. */
  pruneBytes(maxBytes: number, limit: number): Promise<number>;
}

/** `onCommit` is told how long each append took (a metric). */
export function postgresAuditWrites(db: PgRunner, onCommit: (seconds: number) => void): PostgresAuditWrites {
  return {
    async append(events: readonly AuditRow[]): Promise<void> {
      if (events.length === 0) return;
      // One statement for the batch (one round trip, one commit); WITH ORDINALITY keeps the
      // batch's order in the ids it is given.
      const started = performance.now();
      const keys = events.map((e) => auditKeysJson(e.keys));
      // The sizes' sum joins audit_usage in the same statement (--audit-max-bytes).
      await db.q(
        `WITH ins AS (
           INSERT INTO audit_events (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, stage, size)
           SELECT e.tenant, e.time, e.request_id, e.method, e.sub, e.mesh, e.name, e.version, e.keys, e.code, e.peer, e.stage, e.size
           FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[])
             WITH ORDINALITY AS e (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, stage, size, ord)
           ORDER BY e.ord
           RETURNING size)
         UPDATE audit_usage SET bytes = bytes + (SELECT coalesce(sum(size), 0) FROM ins) WHERE id = 1`,
        // Binary arrays (pg-binary-arrays.ts): no text literal to render here and parse there.
        [
          textArray(events.map((e) => e.tenant)),
          int8Array(events.map((e) => e.time)),
          textArray(events.map((e) => e.requestId)),
          textArray(events.map((e) => e.method)),
          textArray(events.map((e) => e.sub)),
          textArray(events.map((e) => e.mesh)),
          textArray(events.map((e) => e.name)),
          int8Array(events.map((e) => e.version)),
          textArray(keys),
          textArray(events.map((e) => e.code)),
          textArray(events.map((e) => e.peer)),
          textArray(events.map((e) => e.stage)),
          int8Array(events.map((e, i) => auditRowBytes(e, keys[i]!))),
        ],
      );
      onCommit((performance.now() - started) / 1000);
    },
    async prune(before: number, limit: number): Promise<number> {
      const r = await db.q<{ n: string }>(
        `WITH gone AS (DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE time < $1 ORDER BY time LIMIT $2) RETURNING size)
         UPDATE audit_usage SET bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone) WHERE id = 1 RETURNING (SELECT count(*) FROM gone) AS n`,
        [before, limit],
      );
      return Number(r.rows[0]?.n ?? 0);
    },
    async pruneBytes(maxBytes: number, limit: number): Promise<number> {
      return db.tx(async (c) => {
        // The usage row's lock makes replicas prune one at a time (and appends wait for it).
        const u = await db.q<{ bytes: string }>("SELECT bytes FROM audit_usage WHERE id = 1 FOR UPDATE", [], c);
        const excess = Number(u.rows[0]?.bytes ?? 0) - maxBytes;
        if (excess <= 0) return 0;
        // The oldest events whose sizes, summed in (time, id) order, first cover the excess.
        const r = await db.q<{ n: string }>(
          `WITH victims AS (
             SELECT id FROM (
               SELECT id, size, sum(size) OVER (ORDER BY time, id) AS acc FROM (SELECT id, size, time FROM audit_events ORDER BY time, id LIMIT $2) o
             ) w WHERE acc - size < $1),
           gone AS (DELETE FROM audit_events a USING victims v WHERE a.id = v.id RETURNING a.size)
           UPDATE audit_usage SET bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone) WHERE id = 1 RETURNING (SELECT count(*) FROM gone) AS n`,
          [excess, limit],
          c,
        );
        return Number(r.rows[0]?.n ?? 0);
      });
    },
  };
}
