/**
 * `secretd doctor` on a PostgreSQL data set, from outside the servers: one read-only
 * REPEATABLE READ transaction (one snapshot, writes go on) that reports the schema and
 * walks every sealed version, plus the referential checks the servers rely on. It never
 * migrates or writes. Page-level integrity is PostgreSQL's own business (data checksums,
 * amcheck): SQLite's integrity_check has no counterpart here.
 */
import pg from "pg";
import type { SealedVersionRow } from "../sqlite/sqlite-maintenance.js";
import { PG_MIGRATIONS } from "./migrations.js";
import { noPasswordError, wrap } from "./postgres-errors.js";

/** Versions fetched per round trip while walking (keyset on the primary key). */
const PAGE = 500;

export interface PostgresSnapshot {
  /** `server_version` as the server reports it. */
  readonly serverVersion: string;
  /** Highest migration id applied, and the highest this build knows. */
  readonly schema: number;
  readonly schemaKnown: number;
  readonly secrets: number;
  readonly versions: number;
  /** Secrets whose current version has no stored row (each one unreadable). */
  readonly missingCurrent: ReadonlyArray<{ tenant: string; mesh: string; name: string; version: number }>;
  /** Every stored version, in (uid, version) order, read in the same snapshot. */
  versionsIn(): AsyncGenerator<SealedVersionRow, void, undefined>;
  close(): Promise<void>;
}

interface Row {
  tenant: string;
  mesh: string;
  name: string;
  uid: string;
  version: string;
  dek: Buffer;
  payload: Buffer;
}

export async function openPostgresSnapshot(url: string, statementTimeoutMs: number): Promise<PostgresSnapshot> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: 5000,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    application_name: "secretd-doctor",
  });
  // A connection that drops mid-walk emits here; the pending query then rejects.
  client.on("error", () => undefined);
  const q = async <R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> => {
    try {
      return (await client.query<R>(text, values)).rows;
    } catch (err) {
      throw wrap(err);
    }
  };
  try {
    await client.connect();
  } catch (err) {
    throw noPasswordError(err) ?? wrap(err);
  }
  try {
    await q("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const serverVersion = (await q<{ server_version: string }>("SHOW server_version"))[0]!.server_version;
    const hasSchema = (await q<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t"))[0]!.t !== null;
    const schema = hasSchema ? Number((await q<{ m: number | null }>("SELECT max(id) AS m FROM schema_migrations"))[0]!.m ?? 0) : 0;
    const schemaKnown = Math.max(...PG_MIGRATIONS.map((m) => m.id));
    let secrets = 0;
    let versions = 0;
    let missingCurrent: PostgresSnapshot["missingCurrent"] = [];
    if (schema > 0) {
      secrets = Number((await q<{ n: string }>("SELECT count(*) AS n FROM secrets"))[0]!.n);
      versions = Number((await q<{ n: string }>("SELECT count(*) AS n FROM secret_versions"))[0]!.n);
      missingCurrent = (
        await q<{ tenant: string; mesh: string; name: string; version: string }>(
          `SELECT s.tenant, s.mesh, s.name, s.version FROM secrets s
           WHERE NOT EXISTS (SELECT 1 FROM secret_versions v WHERE v.uid = s.uid AND v.version = s.version)
           ORDER BY s.tenant, s.mesh, s.name LIMIT 100`,
        )
      ).map((r) => ({ tenant: r.tenant, mesh: r.mesh, name: r.name, version: Number(r.version) }));
    }
    return {
      serverVersion,
      schema,
      schemaKnown,
      secrets,
      versions,
      missingCurrent,
      async *versionsIn() {
        if (schema === 0) return;
        let after: [string, string] = ["", "-1"];
        for (;;) {
          const rows = await q<Row>(
            `SELECT s.tenant, s.mesh, s.name, s.uid, v.version, v.dek, v.payload
             FROM secret_versions v JOIN secrets s ON s.uid = v.uid
             WHERE (v.uid, v.version) > ($1, $2::bigint)
             ORDER BY v.uid, v.version LIMIT ${PAGE}`,
            after,
          );
          for (const r of rows) yield { tenant: r.tenant, mesh: r.mesh, name: r.name, uid: r.uid, version: Number(r.version), dek: r.dek, payload: r.payload };
          if (rows.length < PAGE) return;
          const last = rows[rows.length - 1]!;
          after = [last.uid, last.version];
        }
      },
      async close() {
        await client.query("ROLLBACK").catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}
