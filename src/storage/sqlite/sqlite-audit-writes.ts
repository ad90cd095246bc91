/**
 * The two audit writes on SQLite (append a batch, prune by time), over any connection to
 * the file: SqliteStorage's own, or the audit writer thread's (sqlite-audit-thread.ts).
 * Each marks its transaction as housekeeping (sqlite-change-feed.ts), so other
 * connections' change feeds know it changed no secret or grant. Callers run them inside
 * a write transaction.
 */
import type Database from "better-sqlite3";
import type { AuditRow } from "../storage.js";
import { MARK_HOUSEKEEPING_SQL } from "./sqlite-change-feed.js";

export interface SqliteAuditWrites {
  append(events: readonly AuditRow[]): void;
  prune(before: number, limit: number): number;
}

export function sqliteAuditWrites(db: Database.Database): SqliteAuditWrites {
  // Positional parameters: no object per row on the flush path.
  const insert = db.prepare<[string, number, string, string, string, string, string, number, string, string, string]>(
    `INSERT INTO audit_events (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const prune = db.prepare("DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE time < ? ORDER BY time LIMIT ?)");
  const mark = db.prepare(MARK_HOUSEKEEPING_SQL);
  return {
    append(events) {
      for (const e of events) {
        insert.run(e.tenant, e.time, e.requestId, e.method, e.sub, e.mesh, e.name, e.version, e.keys.length === 0 ? "[]" : JSON.stringify(e.keys), e.code, e.peer);
      }
      mark.run();
    },
    prune(before, limit) {
      const n = prune.run(before, limit).changes;
      if (n > 0) mark.run();
      return n;
    },
  };
}
