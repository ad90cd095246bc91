/**
 * Operations on a secretd SQLite file from outside the server: is a server using it,
 * an online backup, SQLite's integrity check, and a read-only walk over every sealed
 * version (for `secretd doctor`). None of them sees a value in clear or a key.
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { SecretdError } from "../../errors.js";

/** Pages copied per backup step: all of them, so the copy is one read transaction (one snapshot). */
const ALL_PAGES = 0x7fffffff;

function openReadOnly(file: string): Database.Database {
  try {
    return new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new SecretdError("FAILED_PRECONDITION", `cannot open the database ${file} (${(err as { code?: string }).code ?? "error"})`, { cause: err });
  }
}

/**
 * Whether another connection (a running server, a `keys rotate`) has the database open.
 * In WAL mode every open connection holds a shared lock, so an exclusive lock taken with
 * no wait fails exactly while one does; the OS drops that lock when its process dies,
 * even by SIGKILL, so a crashed server never looks live.
 */
export function isDatabaseInUse(file: string): boolean {
  const db = new Database(file, { fileMustExist: true, timeout: 0 });
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.exec("COMMIT");
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_BUSY" || (err as { code?: string }).code === "SQLITE_LOCKED") return true;
    throw new SecretdError("FAILED_PRECONDITION", `cannot lock the database ${file} (${(err as { code?: string }).code ?? "error"})`, { cause: err });
  } finally {
    db.close();
  }
}

/**
 * Holds the database the way a serving connection does (a read leaves WAL mode's shared
 * lock in place until close), without ever writing: the `--workers` primary keeps one,
 * so `isDatabaseInUse` says "in use" even while every worker is down and restarting.
 */
export function holdDatabase(file: string): { release(): void } {
  const db = openReadOnly(file);
  db.prepare("SELECT count(*) FROM schema_migrations").pluck().get();
  return { release: () => db.close() };
}

/** integrity_check's findings: empty when the file is sound. */
export function integrityProblems(file: string): string[] {
  const db = openReadOnly(file);
  try {
    const rows = db.pragma("integrity_check") as Array<{ integrity_check: string }>;
    return rows.map((r) => r.integrity_check).filter((r) => r !== "ok");
  } finally {
    db.close();
  }
}

export interface DatabaseCounts {
  readonly secrets: number;
  readonly versions: number;
  readonly grants: number;
  /** Highest migration id applied: a backup from an older build is migrated on first open. */
  readonly schema: number;
}

/** Row counts of a secretd database; FAILED_PRECONDITION when the file is not one. */
export function databaseCounts(file: string): DatabaseCounts {
  const db = openReadOnly(file);
  try {
    const count = (table: string): number => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    try {
      return {
        secrets: count("secrets"),
        versions: count("secret_versions"),
        grants: count("grants"),
        schema: db.prepare("SELECT coalesce(max(id), 0) FROM schema_migrations").pluck().get() as number,
      };
    } catch (err) {
      throw new SecretdError("FAILED_PRECONDITION", `${file} is not a secretd database`, { cause: err });
    }
  } finally {
    db.close();
  }
}

function fsyncPath(p: string): void {
  const fd = openSync(p, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Copies `source` into the new file `dest` with SQLite's online backup API, in one
 * step: one read transaction, so a consistent snapshot, while writers go on (WAL). The
 * copy is turned into a single self-contained file (rollback journal), checked with
 * integrity_check, fsynced and made owner-only.
 */
export async function backupDatabase(source: string, dest: string): Promise<DatabaseCounts> {
  const src = openReadOnly(source);
  try {
    await src.backup(dest, { progress: () => ALL_PAGES });
  } catch (err) {
    throw new SecretdError("FAILED_PRECONDITION", `backup of ${source} failed (${(err as { code?: string }).code ?? (err as Error).message})`, { cause: err });
  } finally {
    src.close();
  }
  const copy = new Database(dest, { fileMustExist: true });
  try {
    copy.pragma("journal_mode = DELETE");
  } finally {
    copy.close();
  }
  const problems = integrityProblems(dest);
  if (problems.length > 0) throw new SecretdError("DATA_LOSS", `the copy fails integrity_check: ${problems.slice(0, 3).join("; ")}`);
  fsyncPath(dest);
  fsyncPath(path.dirname(dest));
  return databaseCounts(dest);
}

/** One sealed version with what its AAD binds it to. */
export interface SealedVersionRow {
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly uid: string;
  readonly version: number;
  readonly dek: Buffer;
  readonly payload: Buffer;
}

/** Every stored version, one read transaction, in (tenant, mesh, name, version) order. */
export function* sealedVersions(file: string): Generator<SealedVersionRow, void, undefined> {
  const db = openReadOnly(file);
  try {
    db.exec("BEGIN");
    const rows = db
      .prepare(
        `SELECT s.tenant, s.mesh, s.name, s.uid, v.version, v.dek, v.payload
         FROM secret_versions v JOIN secrets s ON s.uid = v.uid
         ORDER BY s.tenant, s.mesh, s.name, v.version`,
      )
      .iterate() as IterableIterator<SealedVersionRow>;
    yield* rows;
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}
