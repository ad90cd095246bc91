/**
 * Opening secretd's SQLite file: owner-only, WAL mode, synchronous=FULL (set and read
 * back on every open: a reopened WAL database otherwise comes back NORMAL), foreign keys
 * on, secure_delete on so destroyed ciphertext is overwritten rather than left in free
 * pages; then the pending migrations.
 */
import { chmodSync, closeSync, openSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { SecretdError } from "../../errors.js";
import { makeDirs } from "../../make-dirs.js";
import { migrateSync, schemaMigrationsSql, type MigrationPort } from "../sql/migrate.js";
import { MIGRATIONS } from "./migrations.js";

type Db = Database.Database;

/** How long a blocking statement waits for another connection's lock (see group-commit.ts for writes). */
export const BUSY_TIMEOUT_MS = 5000;

function pragma(db: Db, name: string, value: string | number, expect: string | number): void {
  db.pragma(`${name} = ${value}`);
  const got = db.pragma(name, { simple: true });
  if (String(got).toLowerCase() !== String(expect)) {
    throw new SecretdError("INTERNAL", `sqlite: ${name} is ${String(got)}, expected ${String(expect)}`);
  }
}

export function openSqliteDatabase(file: string): Db {
  makeDirs(path.dirname(file));
  // Owner-only: SQLite gives the -wal and -shm files the mode of the database file.
  closeSync(openSync(file, "a", 0o600));
  chmodSync(file, 0o600);
  const db = new Database(file);
  try {
    pragma(db, "journal_mode", "WAL", "wal");
    pragma(db, "synchronous", "FULL", 2);
    pragma(db, "foreign_keys", "ON", 1);
    pragma(db, "secure_delete", "ON", 1);
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // 4 MiB of page cache instead of the 16 MiB default: hot secrets are served from the
    // read cache, inserts touch few pages (time-ordered uids), and the rest is in the OS
    // page cache anyway; the 12 MiB saved count against the RSS budget.
    db.pragma("cache_size = -4096");
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

/**
 * Applies the pending migrations in list order. With `only`, just those ids (the schema
 * checker rebuilds, in memory, the schema a database with that history must have).
 */
export function migrate(db: Db, only?: ReadonlySet<number>): void {
  const port: MigrationPort<void> = {
    applied: () => {
      db.exec(schemaMigrationsSql("INTEGER"));
      return db.prepare("SELECT id FROM schema_migrations").pluck().all() as number[];
    },
    apply: (m, appliedTime) =>
      db.transaction(() => {
        db.exec(m.sql);
        db.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, ?)").run(m.id, appliedTime);
      }).immediate(),
  };
  migrateSync(MIGRATIONS, port, only);
}
