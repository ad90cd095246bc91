/**
 * One migration runner for both SQL back-ends, over a small transaction port: the back-end
 * says which ids are applied and applies one migration (its SQL and its schema_migrations
 * row) in one transaction of its own. better-sqlite3 answers synchronously, pg with
 * promises: `migrateSync` and `migrate` are the same loop, so the order, the `only` filter
 * and the bookkeeping are decided here once.
 */

export interface Migration {
  readonly id: number;
  readonly sql: string;
}

export interface MigrationPort<R> {
  /** Creates schema_migrations when missing and returns the ids it lists. */
  applied(): R extends Promise<unknown> ? Promise<Iterable<number>> : Iterable<number>;
  /** In one transaction: runs `m.sql` and records `m.id` at `appliedTime`. */
  apply(m: Migration, appliedTime: number): R;
}

/** The bookkeeping table (BIGINT on PostgreSQL, INTEGER on SQLite: both hold ms since the epoch). */
export function schemaMigrationsSql(timeType: "INTEGER" | "BIGINT"): string {
  return `CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, applied_time ${timeType} NOT NULL)`;
}

/** The migrations still to apply, in list order; with `only`, just those ids (the schema checker's rebuild). */
export function pendingMigrations(all: readonly Migration[], applied: Iterable<number>, only?: ReadonlySet<number>): Migration[] {
  const done = new Set(applied);
  return all.filter((m) => !done.has(m.id) && (only === undefined || only.has(m.id)));
}

export function migrateSync(all: readonly Migration[], port: MigrationPort<void>, only?: ReadonlySet<number>): void {
  for (const m of pendingMigrations(all, port.applied(), only)) port.apply(m, Date.now());
}

export async function migrate(all: readonly Migration[], port: MigrationPort<Promise<void>>, only?: ReadonlySet<number>): Promise<void> {
  for (const m of pendingMigrations(all, await port.applied(), only)) await port.apply(m, Date.now());
}
