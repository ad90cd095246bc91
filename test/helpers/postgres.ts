/** The throw-away PostgreSQL cluster of scripts/postgres-cluster.mjs, for tests. */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
export { startPostgres, type PostgresCluster } from "../../scripts/postgres-cluster.mjs";

/** "postgres" when this run's e2e servers use PostgreSQL (SECRETD_E2E_STORAGE, npm run test:postgres). */
export const E2E_STORAGE = process.env.SECRETD_E2E_STORAGE === "postgres" ? "postgres" : "sqlite";

/** A fresh, empty database in the run's shared cluster (global-setup.ts); its URL. */
export async function createE2eDatabase(): Promise<string> {
  const url = inject("e2ePostgresUrl");
  if (!url) throw new Error("SECRETD_E2E_STORAGE=postgres but the global setup started no cluster");
  const name = `e2e_${randomBytes(6).toString("hex")}`;
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return url.replace(/\/[^/]*$/, `/${name}`);
}

/** Whether `user` logs in with `password` to the `postgres` database of the cluster on 127.0.0.1:`port` and runs a query. */
export async function logsIn(port: number, user: string, password: string): Promise<boolean> {
  const c = new pg.Client({ host: "127.0.0.1", port, database: "postgres", user, password, connectionTimeoutMillis: 10_000 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * The alternating users a postgres rotator switches between, made in the cluster at `url`:
 * `<prefix>_a` (LOGIN, password `initial`, the secret's first username) and `<prefix>_b` (NOLOGIN).
 */
export async function createAlternatingRoles(url: string, prefix: string, initial: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`CREATE ROLE ${prefix}_a LOGIN PASSWORD '${initial}'; CREATE ROLE ${prefix}_b NOLOGIN`);
  } finally {
    await c.end();
  }
}

/** The values of a postgres rotator's admin secret: the cluster's superuser on 127.0.0.1:`port` (its password unused: trust for postgres). */
export function adminSecretData(port: number): Record<string, string> {
  return { host: "127.0.0.1", port: String(port), dbname: "postgres", username: "postgres", password: "unused" };
}
