/**
 * `secretd doctor`, `backup` and `restore` with a PostgreSQL --database-url, as an operator
 * of replicas runs them: doctor checks the key files and the configuration, the schema and
 * that every secret's current version is stored, and opens every stored version with the
 * keyring (naming the ones that fail); backup and restore refuse and point at pg_dump.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { runCli } from "../helpers/cli.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 90_000;
let cluster: PostgresCluster;
let url: string;
let server: TestServer;
let token: string;

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase();
  server = await startTestServer({ databaseUrl: url });
  token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
  for (const n of ["alpha", "bravo", "charlie"]) await server.call("createSecret", { mesh: "m", name: n, stringData: { v: `pg-doctor-value-${n}` } }, token);
  const a = await server.call<Secret>("getSecret", { mesh: "m", name: "alpha" }, token);
  await server.call("updateSecret", { mesh: "m", name: "alpha", etag: a.etag, stringData: { v: "pg-doctor-value-alpha-2" }, updateMask: ["data"] }, token);
}, SLOW);

afterAll(async () => {
  await server?.stop();
  cluster?.stop();
});

async function sql(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text, values);
  } finally {
    await c.end();
  }
}

describe("doctor with PostgreSQL", () => {
  it("when the data set is sound, then doctor reports the server, the schema and every version opened, next to a running replica", async () => {
    const r = await runCli(["doctor", "--database-url", url, "--data-dir", server.dataDir]);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^ok +database postgres:\/\/.*: PostgreSQL \d+\.\d+.*, schema \d+, 3 secrets, 4 versions$/m);
    expect(r.out).toMatch(/^note +integrity_check is SQLite's/m);
    expect(r.out).toMatch(/^ok +every secret's current version is stored$/m);
    expect(r.out).toMatch(/^ok +KEK file .*kek\.json: mode 0600$/m);
    expect(r.out).toContain("opened 4 of 4 stored versions");
    expect(r.out).toMatch(/^ok +row MACs of 3 of 3 secrets check/m);
    expect(r.out).toContain("no problems found");
    expect(r.status).toBe(0);
  }, SLOW);

  it("when a blob is tampered with, a current version is gone and an owner swapped, then doctor names all three, shows no value, and exits 1", async () => {
    const bravo = (await sql("SELECT uid FROM secrets WHERE name = 'bravo'")).rows[0].uid as string;
    const payload = (await sql("SELECT payload FROM secret_versions WHERE uid = $1", [bravo])).rows[0].payload as Buffer;
    payload[payload.length - 1]! ^= 0x01;
    await sql("UPDATE secret_versions SET payload = $1 WHERE uid = $2", [payload, bravo]);
    await sql("DELETE FROM secret_versions WHERE uid = (SELECT uid FROM secrets WHERE name = 'charlie')");
    await sql("UPDATE secrets SET owner = 'mallory' WHERE name = 'alpha'");

    const r = await runCli(["doctor", "--database-url", url, "--data-dir", server.dataDir]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(new RegExp(`^FAIL +does not open: tenant "acme" mesh "m" secret "bravo" version 1 \\(uid ${bravo}\\): DATA_LOSS`, "m"));
    expect(r.out).toMatch(/^FAIL +current version missing: tenant "acme" mesh "m" secret "charlie" version 1$/m);
    expect(r.out).toContain("opened 2 of 3 stored versions");
    expect(r.out).toMatch(/^FAIL +row MAC does not check: tenant "acme" mesh "m" secret "alpha" .*DATA_LOSS/m);
    expect(r.out).toContain("3 problems found");
    expect(r.out + r.err).not.toContain("pg-doctor-value-");
  }, SLOW);

  it("when the database cannot be reached, then doctor says so without the URL's password and exits 1", async () => {
    const r = await runCli(["doctor", "--database-url", "postgres://secretd:Pw-Hidden-42@127.0.0.1:1/secretd", "--data-dir", server.dataDir]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^FAIL +database postgres:\/\/secretd:\*\*\*@127\.0\.0\.1:1\/secretd: UNAVAILABLE: the database is unreachable$/m);
    expect(r.out + r.err).not.toContain("Pw-Hidden-42");
  }, SLOW);
});

describe("backup and restore with PostgreSQL", () => {
  for (const [verb, tool] of [["backup", "pg_dump"], ["restore", "pg_restore"]] as const) {
    it(`when ${verb} is given a PostgreSQL --database-url, then it refuses (exit 2), points at ${tool} and shows no password`, async () => {
      const r = await runCli([verb, "--database-url", "postgres://secretd:Pw-Hidden-42@db.internal/secretd", "--data-dir", server.dataDir, "/tmp/never-written.db"]);
      expect(r.status).toBe(2);
      expect(r.err).toContain(`secretd ${verb} works on the SQLite data dir only`);
      expect(r.err).toContain(tool);
      expect(r.err).toContain("postgres://secretd:***@db.internal/secretd");
      expect(r.err).not.toContain("Pw-Hidden-42");
      expect(r.out).toBe("");
    }, SLOW);
  }
});
