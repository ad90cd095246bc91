/**
 * The audit writer thread (see sqlite-audit-writer.ts): its own connection to the
 * database file, writing each batch it is sent in one immediate transaction, fsync'd
 * (synchronous=FULL), off the server's event loop. Waiting for the write lock here may
 * sleep (busy_timeout): only this thread waits.
 */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { AuditRow } from "../storage.js";
import { sqliteAuditWrites } from "./sqlite-audit-writes.js";
import type { AuditThreadReply, AuditThreadRequest } from "./sqlite-audit-writer.js";

const port = parentPort!;
const { file, busyTimeoutMs } = workerData as { file: string; busyTimeoutMs: number };
const db = new Database(file, { fileMustExist: true });
db.pragma("synchronous = FULL");
// Pruned events are overwritten on disk, as on the server's own connection.
db.pragma("secure_delete = ON");
db.pragma(`busy_timeout = ${busyTimeoutMs}`);
db.pragma("cache_size = -1024");
const writes = sqliteAuditWrites(db);
const append = db.transaction((events: readonly AuditRow[]) => writes.append(events));
const prune = db.transaction((before: number, limit: number) => writes.prune(before, limit));
const pruneBytes = db.transaction((maxBytes: number, limit: number) => writes.pruneBytes(maxBytes, limit));

port.on("message", (m: AuditThreadRequest) => {
  let reply: AuditThreadReply;
  try {
    const n =
      m.op === "append" ? (append.immediate(m.events), m.events.length) : m.op === "prune" ? prune.immediate(m.before, m.limit) : pruneBytes.immediate(m.maxBytes, m.limit);
    reply = { id: m.id, n };
  } catch (err) {
    const e = err as { message?: unknown; code?: unknown };
    reply = { id: m.id, error: { message: String(e?.message ?? err), code: typeof e?.code === "string" ? e.code : undefined } };
  }
  port.postMessage(reply);
});
