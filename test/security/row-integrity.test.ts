/**
 * The row-integrity suite (row-integrity-suite.ts) on a SQLite file, edited through a
 * second connection while the server runs. Then, SQLite's own case: a database made by
 * the migrations before row MACs gets its MACs once at start, and never again.
 */
import { mkdtempSync, rmSync, unlinkSync, existsSync, renameSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { ALICE, BOB, M, listed, logged, read, runRowIntegritySuite } from "./row-integrity-suite.js";
import { DB_FILE } from "../../src/storage/open-storage.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { MIGRATIONS } from "../../src/storage/sqlite/migrations.js";
import type { Sql } from "../../src/storage/sql/sql.js";
import { startTestServer } from "../helpers/server.js";

runRowIntegritySuite("SQLite", async () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-rows-"));
  const servers = [await startTestServer({ dataDir })];
  const db = new Database(path.join(dataDir, DB_FILE));
  db.pragma("busy_timeout = 5000");
  return {
    servers,
    doctorArgs: ["--data-dir", dataDir],
    async edit(edits) {
      db.transaction(() => {
        for (const [q, binds] of edits) db.prepare(q.sqlite).run(binds);
      })();
    },
    async rows<T>(q: Sql, binds: object = {}): Promise<T[]> {
      return db.prepare(q.sqlite).all(binds) as T[];
    },
    async restart(between) {
      await servers[0]!.stop();
      await between();
      servers[0] = await startTestServer({ dataDir });
    },
    async close() {
      db.close();
      await servers[0]?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

describe("a database made before row MACs", () => {
  it("when a server starts on it, then every row gets its MAC once, everything reads as before, and a MAC nulled afterwards is DATA_LOSS", { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-legacy-"));
    try {
      // Rows as a server writes them, then copied column by column into a file made by the migrations before 7.
      let s = await startTestServer({ dataDir });
      let alice = await s.token(ALICE);
      const v1 = await s.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
      await s.call("updateSecret", { mesh: M, name: "old-1", etag: v1.etag, stringData: { v: "old-1-v2" } }, alice);
      await s.call("createSecret", { mesh: M, name: "old-2", stringData: { v: "old-2-v1" }, immutable: true }, alice);
      await s.call("grantAccess", { mesh: M, name: "old-2", subject: "user:bob", permission: Permission.PERMISSION_READ }, alice);
      await s.stop();

      const file = path.join(dataDir, DB_FILE);
      const legacyFile = path.join(dataDir, "legacy.db");
      const legacy = new Database(legacyFile);
      legacy.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
      // The migrations listed before row MACs (sec2's 6 is listed after 7).
      for (const m of MIGRATIONS.slice(0, MIGRATIONS.findIndex((x) => x.id === 7))) {
        legacy.exec(m.sql);
        legacy.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, ?)").run(m.id, Date.now());
      }
      legacy.prepare("ATTACH DATABASE ? AS cur").run(file);
      for (const table of ["secrets", "secret_versions", "grants", "create_requests"]) {
        const cols = (legacy.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[]).join(", ");
        legacy.exec(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM cur.${table}`);
      }
      legacy.exec("DETACH DATABASE cur");
      expect(legacy.prepare("SELECT count(*) FROM pragma_table_info('secrets') WHERE name = 'mac'").pluck().get()).toBe(0);
      legacy.close();
      for (const suffix of ["", "-wal", "-shm"]) if (existsSync(file + suffix)) unlinkSync(file + suffix);
      renameSync(legacyFile, file);

      s = await startTestServer({ dataDir });
      alice = await s.token(ALICE);
      const bob = await s.token(BOB);
      const backfilled = await logged(s, (l) => l.includes("made before row MACs"));
      expect(backfilled).toHaveLength(1);
      expect(JSON.parse(backfilled[0]!).rows).toBe(2 + 2 + 3 + 1); // 2 secret rows, 2 grant sets, 3 versions, 1 create request
      expect(await read(s, alice, "old-1")).toBe("old-1-v2");
      expect(await read(s, alice, "old-1", { version: 1 })).toBe("old-1-v1");
      expect(await read(s, bob, "old-2")).toBe("old-2-v1");
      expect((await listed(s, alice)).sort()).toEqual(["old-1", "old-2"]);
      // The create request is authenticated too: a retry answers with the secret it made.
      const retry = await s.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
      expect(retry.uid).toBe(v1.uid);
      await s.stop();

      // Nulling a MAC afterwards is no way back to "unauthenticated".
      const raw = new Database(file);
      expect(raw.prepare("SELECT count(*) FROM secrets WHERE mac IS NULL OR grants_mac IS NULL").pluck().get()).toBe(0);
      expect(raw.prepare("SELECT count(*) FROM secret_versions WHERE mac IS NULL").pluck().get()).toBe(0);
      raw.prepare("UPDATE secrets SET mac = NULL, immutable = 0 WHERE name = 'old-2'").run();
      raw.close();
      s = await startTestServer({ dataDir });
      alice = await s.token(ALICE);
      expect(s.logs.filter((l) => l.includes("made before row MACs"))).toEqual([]);
      expect(await read(s, alice, "old-2")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "old-1")).toBe("old-1-v2");
      await s.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
