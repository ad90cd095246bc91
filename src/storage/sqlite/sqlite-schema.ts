/**
 * Is a SQLite file's schema exactly the one secretd's migrations make? A backup (or a
 * data dir) can carry objects secretd never created: a TRIGGER runs its SQL on every
 * write the server makes (one deleted a tenant's audit events as they were written), a
 * VIEW, INDEX or changed CREATE TABLE changes what the server's statements do. The
 * expected schema is never a list kept here: it is built by running the same migrations
 * the file records as applied on an empty in-memory database, then every sqlite_master
 * row (type, name, table, SQL with whitespace collapsed) is compared with it.
 */
import Database from "better-sqlite3";
import { SecretdError } from "../../errors.js";
import { MIGRATIONS } from "./migrations.js";
import { migrate } from "./sqlite-database.js";

interface MasterRow {
  readonly type: string;
  readonly name: string;
  readonly tbl_name: string;
  readonly sql: string | null;
}

export interface SchemaCheck {
  /** One line per object that differs, naming it; empty when the schema is secretd's. */
  readonly differences: readonly string[];
  /** Migration ids the file records that this build does not know (a newer build's file): not compared. */
  readonly unknownMigrations: readonly number[];
}

/** Tables SQLite itself makes on ANALYZE; their names are reserved, so no CREATE makes them. */
const STAT_TABLE = /^sqlite_stat[1-4]$/;

function master(db: Database.Database): Map<string, MasterRow> {
  const rows = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master").all() as MasterRow[];
  const out = new Map<string, MasterRow>();
  for (const r of rows) {
    if (r.type === "table" && STAT_TABLE.test(r.name)) continue;
    out.set(`${r.type} ${r.name}`, r);
  }
  return out;
}

function normalised(sql: string | null): string {
  return (sql ?? "").replace(/\s+/g, " ").trim();
}

function describe(r: MasterRow): string {
  const on = r.type === "table" || r.tbl_name === r.name ? "" : ` on table ${JSON.stringify(r.tbl_name.slice(0, 100))}`;
  return `${r.type} ${JSON.stringify(r.name.slice(0, 100))}${on}`;
}

/** Compares an open database's schema with the one its recorded migrations make. */
export function checkSchemaOf(db: Database.Database): SchemaCheck {
  let applied: number[];
  try {
    applied = db.prepare("SELECT id FROM schema_migrations ORDER BY id").pluck().all() as number[];
  } catch (err) {
    throw new SecretdError("FAILED_PRECONDITION", "not a secretd database (no schema_migrations table)", { cause: err });
  }
  const known = new Set(MIGRATIONS.map((m) => m.id));
  const unknownMigrations = applied.filter((id) => !known.has(id));
  if (unknownMigrations.length > 0) return { differences: [], unknownMigrations };
  const fresh = new Database(":memory:");
  let expected: Map<string, MasterRow>;
  try {
    migrate(fresh, new Set(applied));
    expected = master(fresh);
  } finally {
    fresh.close();
  }
  const actual = master(db);
  const differences: string[] = [];
  for (const [key, r] of actual) {
    const want = expected.get(key);
    if (want === undefined) differences.push(`unexpected ${describe(r)}: secretd's migrations make no such object`);
    else if (want.tbl_name !== r.tbl_name || normalised(want.sql) !== normalised(r.sql)) differences.push(`changed ${describe(r)}: its SQL is not what secretd's migrations make`);
  }
  for (const [key, r] of expected) if (!actual.has(key)) differences.push(`missing ${describe(r)}`);
  return { differences, unknownMigrations };
}

/** The same, for a file opened read-only. */
export function checkSchema(file: string): SchemaCheck {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new SecretdError("FAILED_PRECONDITION", `cannot open the database ${file} (${(err as { code?: string }).code ?? "error"})`, { cause: err });
  }
  try {
    return checkSchemaOf(db);
  } finally {
    db.close();
  }
}
