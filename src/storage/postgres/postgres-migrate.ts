/**
 * PostgreSQL's migrations, through the one runner (sql/migrate.ts), under a session-level
 * advisory lock: replicas starting together wait for it, then find the work done.
 */
import type pg from "pg";
import { migrate as runMigrations, schemaMigrationsSql } from "../sql/migrate.js";
import { PG_MIGRATIONS } from "./migrations.js";

/** Any advisory-lock key will do as long as every replica uses the same one. */
const MIGRATION_LOCK = 0x5ec7e7d;

export async function migrate(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  c.on("error", () => undefined);
  try {
    await c.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await runMigrations(PG_MIGRATIONS, {
        applied: async () => {
          await c.query(schemaMigrationsSql("BIGINT"));
          return (await c.query<{ id: number }>("SELECT id FROM schema_migrations")).rows.map((r) => r.id);
        },
        apply: async (m, appliedTime) => {
          await c.query("BEGIN");
          try {
            await c.query(m.sql);
            await c.query("INSERT INTO schema_migrations (id, applied_time) VALUES ($1, $2)", [m.id, appliedTime]);
            await c.query("COMMIT");
          } catch (err) {
            await c.query("ROLLBACK");
            throw err;
          }
        },
      });
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    c.release();
  }
}
