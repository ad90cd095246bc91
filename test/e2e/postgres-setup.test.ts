/**
 * PostgreSQL set-up as the README ("Scaling out") gives it, on a cluster that asks for
 * passwords over TCP (SCRAM, as a packaged PostgreSQL 15 does): a login role with a
 * password owning its database is all `serve` needs (owning the database gives it the
 * public schema on PostgreSQL 15). A URL without the password is refused at start with
 * "the database URL has no password" (not the driver's SASL words), and a password given
 * on the command line, where `ps` shows it, gets a warning.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startCli, waitFor } from "../helpers/cli-process.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";

const SLOW = 90_000;
const PASSWORD = "pg-setup-Pw7-not-in-logs";
let cluster: PostgresCluster;
let root: string;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "secretd-pg-setup-"));
  cluster = await startPostgres({ passwords: true });
  // The README's two statements, as the postgres superuser.
  const c = new pg.Client({ connectionString: cluster.url });
  await c.connect();
  try {
    await c.query(`CREATE ROLE secretd LOGIN PASSWORD '${PASSWORD}'`);
    await c.query("CREATE DATABASE secretd OWNER secretd");
  } finally {
    await c.end();
  }
}, SLOW);

afterAll(() => {
  cluster?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SECRETD_") && !k.startsWith("PG")));
  return { ...e, SECRETD_LOG_LEVEL: "info", ...extra };
}

const withPassword = (): string => `postgres://secretd:${PASSWORD}@127.0.0.1:${cluster.port}/secretd`;

describe("PostgreSQL set-up", () => {
  it("when the URL has no password and the server asks for one, then serve refuses to start saying so, naming no password", async () => {
    const r = await runCli(
      ["serve", "--listen", "127.0.0.1:0", "--data-dir", path.join(root, "nopw"), "--database-url", `postgres://secretd@127.0.0.1:${cluster.port}/secretd`],
      env(),
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toContain("the database URL has no password");
    expect(r.err).not.toContain("SASL");
    expect(r.err + r.out).not.toContain(PASSWORD);
  }, SLOW);

  it("when doctor is given a URL without the password, then it says the URL has no password", async () => {
    const r = await runCli(["doctor", "--data-dir", path.join(root, "nopw-doctor"), "--database-url", `postgres://secretd@127.0.0.1:${cluster.port}/secretd`], env());
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^FAIL +database postgres:\/\/secretd@127\.0\.0\.1:\d+\/secretd: FAILED_PRECONDITION: .*the database URL has no password/m);
  }, SLOW);

  it("when a login role with a password owns its database and the URL is in SECRETD_DATABASE_URL, then serve migrates, serves and warns of nothing", async () => {
    const p = startCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", path.join(root, "ok")], env({ SECRETD_DATABASE_URL: withPassword() }));
    try {
      await waitFor("secretd serving", () => p.stdout().includes('"msg":"secretd serving"') || p.child.exitCode !== null, 60_000);
      expect(p.child.exitCode, p.stderr()).toBeNull();
      expect(p.stdout() + p.stderr()).not.toContain("on the command line");
      expect(p.stdout() + p.stderr()).not.toContain(PASSWORD);
    } finally {
      await p.stop();
    }
    // The tables are the role's own, in the public schema.
    const c = new pg.Client({ connectionString: withPassword() });
    await c.connect();
    try {
      const owners = (await c.query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")).rows.map((r: { tableowner: string }) => r.tableowner);
      expect(owners).toEqual(["secretd"]);
    } finally {
      await c.end();
    }
  }, SLOW);

  it("when --database-url carries the password on the command line, then serve warns that ps shows it, without printing it", async () => {
    const p = startCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", path.join(root, "argv"), "--database-url", withPassword()], env());
    try {
      await waitFor("secretd serving", () => p.stdout().includes('"msg":"secretd serving"') || p.child.exitCode !== null, 60_000);
      expect(p.child.exitCode, p.stderr()).toBeNull();
      const logs = p.stdout() + p.stderr();
      expect(logs).toContain("--database-url carries a password on the command line, where ps shows it");
      expect(logs).not.toContain(PASSWORD);
    } finally {
      await p.stop();
    }
  }, SLOW);
});
