import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
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
});
