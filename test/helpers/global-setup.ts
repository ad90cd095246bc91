/**
 * Builds dist/ once, so CLI tests run the same `secretd` binary a user runs. With
 * SECRETD_E2E_STORAGE=postgres, also starts one throw-away PostgreSQL cluster for the whole
 * run (each test server then gets its own database in it; see server.ts). PostgreSQL
 * missing fails the run, never skips it.
 */
import { execFileSync } from "node:child_process";
import type { TestProject } from "vitest/node";
import { startPostgres } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the run's PostgreSQL cluster; "" on SQLite. */
    e2ePostgresUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  const storage = process.env.SECRETD_E2E_STORAGE ?? "sqlite";
  if (storage !== "sqlite" && storage !== "postgres") throw new Error(`SECRETD_E2E_STORAGE must be sqlite or postgres, not ${storage}`);
  if (storage === "sqlite") {
    project.provide("e2ePostgresUrl", "");
    return () => {};
  }
  const cluster = await startPostgres();
  project.provide("e2ePostgresUrl", cluster.url);
  return () => cluster.stop();
}
