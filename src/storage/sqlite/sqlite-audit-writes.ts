/**
 * The audit writes on SQLite (append a batch, prune by time, prune by size), over any
 * connection to the file: SqliteStorage's own, or the audit writer thread's
 * (sqlite-audit-thread.ts). Each keeps audit_usage (the sum of the events' sizes,
 * audit-row-bytes.ts) in step, and marks its transaction as housekeeping
 * (sqlite-change-feed.ts), so other connections' change feeds know it changed no secret
 * or grant. Callers run them inside a write transaction.
 */
import type Database from "better-sqlite3";
import { auditKeysJson, auditRowBytes } from "../audit-row-bytes.js";
import type { AuditRow } from "../storage.js";
import { MARK_HOUSEKEEPING_SQL } from "./sqlite-change-feed.js";

export interface SqliteAuditWrites {
  append(events: readonly AuditRow[]): void;
  prune(before: number, limit: number): number;
  /** Deletes the oldest events, at most `limit`, until the stored size is at most `maxBytes`. */
  pruneBytes(maxBytes: number, limit: number): number;
}

export function sqliteAuditWrites(db: Database.Database): SqliteAuditWrites {
  // Positional parameters: no object per row on the flush path.
  const insert = db.prepare<[string, number, string, string, string, string, string, number, string, string, string, string, number]>(
    `INSERT INTO audit_events (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, stage, size)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const prune = db.prepare<[number, number], { size: number }>(
    "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE time < ? ORDER BY time LIMIT ?) RETURNING size",
  );
  const usage = db.prepare<[], number>("SELECT bytes FROM audit_usage WHERE id = 1").pluck();
  const addUsage = db.prepare<[number]>("UPDATE audit_usage SET bytes = bytes + ? WHERE id = 1");
  // The oldest events whose sizes, summed in (time, id) order, first cover the excess.
  const oldest = db.prepare<[{ excess: number; limit: number }], { id: number; size: number }>(
    `SELECT id, size FROM (
       SELECT id, size, sum(size) OVER (ORDER BY time, id) AS acc FROM (SELECT id, size, time FROM audit_events ORDER BY time, id LIMIT @limit)
     ) WHERE acc - size < @excess`,
  );
  const deleteIds = db.prepare<[string]>("DELETE FROM audit_events WHERE id IN (SELECT value FROM json_each(?))");
  const mark = db.prepare(MARK_HOUSEKEEPING_SQL);
  return {
    append(events) {
      let bytes = 0;
      for (const e of events) {
        const keys = auditKeysJson(e.keys);
        const size = auditRowBytes(e, keys);
        bytes += size;
        insert.run(e.tenant, e.time, e.requestId, e.method, e.sub, e.mesh, e.name, e.version, keys, e.code, e.peer, e.stage, size);
      }
      addUsage.run(bytes);
      mark.run();
    },
    prune(before, limit) {
      const gone = prune.all(before, limit);
      if (gone.length === 0) return 0;
      addUsage.run(-gone.reduce((sum, r) => sum + r.size, 0));
      mark.run();
      return gone.length;
    },
    pruneBytes(maxBytes, limit) {
      const excess = (usage.get() ?? 0) - maxBytes;
      if (excess <= 0) return 0;
      const victims = oldest.all({ excess, limit });
      if (victims.length === 0) return 0;
      deleteIds.run(JSON.stringify(victims.map((v) => v.id)));
      addUsage.run(-victims.reduce((sum, r) => sum + r.size, 0));
      mark.run();
      return victims.length;
    },
  };
}
