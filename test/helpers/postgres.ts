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
