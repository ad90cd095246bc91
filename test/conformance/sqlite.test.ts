import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/storage/sqlite/migrations.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import type { Storage } from "../../src/storage/storage.js";
import { runStorageConformance, secretRow, versionRow } from "./storage-suite.js";

const dirs = new Map<Storage, string>();

runStorageConformance("sqlite", {
  async open() {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-conf-"));
    const st = new SqliteStorage(path.join(dir, "db.sqlite"));
    dirs.set(st, dir);
    return st;
  },
  async destroy(st) {
    await st.close();
    rmSync(dirs.get(st)!, { recursive: true, force: true });
  },
});

describe("sqlite specifics", () => {
  it("when a WAL database is reopened, then synchronous is FULL, foreign keys and secure_delete are on, migrations ran once", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    for (let i = 0; i < 2; i++) {
      const st = new SqliteStorage(file);
      await st.close();
    }
    // What a plain reopen gives: WAL persists, but synchronous falls back to the default.
    const raw = new Database(file);
    expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(raw.prepare("SELECT count(*) FROM schema_migrations").pluck().get()).toBeGreaterThanOrEqual(2);
    raw.close();
    const st = new SqliteStorage(file);
    const db = (st as unknown as { db: Database.Database }).db;
    expect(db.pragma("synchronous", { simple: true })).toBe(2);
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("secure_delete", { simple: true })).toBe(1);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when old versions are destroyed, then their bytes no longer appear anywhere in the database files", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    let s = secretRow();
    await st.insertSecret(s, versionRow(s, 1, "OLD-CIPHERTEXT-MARKER-1"));
    for (let v = 2; v <= 3; v++) {
      const next = { ...s, version: v, etag: `e${v}` };
      await st.updateSecret(next, versionRow(next, v, `payload-${v}`), s.etag, 1);
      s = next;
    }
    await st.close();
    const { readFileSync, readdirSync } = await import("node:fs");
    for (const f of readdirSync(dir)) expect(readFileSync(path.join(dir, f)).includes("OLD-CIPHERTEXT-MARKER-1")).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a database written before migration 4 is opened, then every version survives the move to a rowid table and reads back", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const old = new Database(file);
    old.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
    for (const m of MIGRATIONS.filter((m) => m.id <= 3)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, 0)").run(m.id);
    }
    const s = secretRow({ version: 2 });
    old.prepare(
      `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time)
       VALUES (?, ?, ?, ?, 'Opaque', '', 'owner', '{}', '{}', 0, 2, ?, '["k"]', 1, 1)`,
    ).run(s.uid, s.tenant, s.mesh, s.name, s.etag);
    const insertVersion = old.prepare("INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time) VALUES (?, ?, '[\"k\"]', ?, ?, 1)");
    insertVersion.run(s.uid, 1, Buffer.from("dek-1"), Buffer.alloc(1200, 1));
    insertVersion.run(s.uid, 2, Buffer.from("dek-2"), Buffer.alloc(1200, 2));
    old.close();

    const st = new SqliteStorage(file);
    for (const [version, byte] of [[1, 1], [2, 2], [0, 2]] as const) {
      const got = await st.readSecret({ tenant: s.tenant, mesh: s.mesh }, s.name, version);
      expect(Buffer.from(got!.version!.payload).equals(Buffer.alloc(1200, byte))).toBe(true);
    }
    const db = (st as unknown as { db: Database.Database }).db;
    const ddl = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'secret_versions'").pluck().get() as string;
    expect(ddl).not.toMatch(/WITHOUT ROWID/i);
    expect(ddl).toMatch(/REFERENCES secrets \(uid\) ON DELETE CASCADE/);
    expect(db.pragma("foreign_key_check")).toEqual([]);
    await st.deleteSecret(s.uid, undefined); // the cascade still reaches the versions
    expect(db.prepare("SELECT count(*) FROM secret_versions").pluck().get()).toBe(0);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
