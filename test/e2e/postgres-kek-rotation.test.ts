/**
 * `secretd keys rotate --database-url …` (the binary) against the PostgreSQL database of
 * two running replicas that share one keyring file: afterwards every data key is wrapped
 * by the new KEK, every row MAC names it, and both replicas still read, list and grant
 * every secret, while the old KEK stays in the file.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kekIdOf } from "../../src/crypto/envelope.js";
import { macKekId } from "../../src/crypto/row-mac.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MAIN = path.resolve("dist/main.js");

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SECRETD_")) env[k] = v;
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

let cluster: PostgresCluster;
let url: string;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase();
  a = await startTestServer({ databaseUrl: url });
  b = await startTestServer({ databaseUrl: url, dataDir: a.dataDir });
}, 90_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  cluster?.stop();
});

describe("KEK rotation on PostgreSQL", () => {
  it("when keys rotate runs with --database-url next to two replicas, then every data key and row MAC is under the new KEK and both replicas serve every secret", { timeout: 90_000 }, async () => {
    const alice = await a.token({ tenant: "acme", sub: "alice", roles: ["data-developer"] });
    const bob = await a.token({ tenant: "acme", sub: "bob", roles: [] });
    const oldKek = a.app.keyring.active.id;
    for (let i = 0; i < 12; i++) {
      const via = i % 2 === 0 ? a : b;
      const v1 = await via.call<Secret>("createSecret", { mesh: "m", name: `s-${i}`, stringData: { v: `rot-${i}-v1` }, requestId: `req-${i}` }, alice);
      await via.call("updateSecret", { mesh: "m", name: `s-${i}`, etag: v1.etag, stringData: { v: `rot-${i}-v2` } }, alice);
      await via.call("grantAccess", { mesh: "m", name: `s-${i}`, subject: "user:bob", permission: Permission.PERMISSION_READ }, alice);
    }

    const cli = await runCli(["keys", "rotate", "--data-dir", a.dataDir, "--database-url", url, "--batch", "5"]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/rewrapped 24 data keys/);
    expect(cli.stdout).toMatch(/re-keyed \d+ row MACs/);
    const kekFile = JSON.parse(readFileSync(path.join(a.dataDir, "kek.json"), "utf8")) as { active: string; keys: { id: string }[] };
    const newKek = kekFile.active;
    expect(newKek).not.toBe(oldKek);
    expect(kekFile.keys.map((k) => k.id)).toContain(oldKek);

    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    try {
      const deks = await sql.query<{ uid: string; version: string; dek: Buffer }>("SELECT uid, version, dek FROM secret_versions");
      expect(deks.rows).toHaveLength(24);
      expect(deks.rows.filter((r) => kekIdOf(r.dek) !== newKek)).toEqual([]);
      const macs = await sql.query<{ row: string; mac: Buffer | null }>(
        `SELECT 'secret ' || name AS row, mac FROM secrets UNION ALL SELECT 'grants ' || name, grants_mac FROM secrets
         UNION ALL SELECT 'version ' || uid || '@' || version, mac FROM secret_versions
         UNION ALL SELECT 'request ' || request_id, mac FROM create_requests`,
      );
      expect(macs.rows).toHaveLength(12 + 12 + 24 + 12);
      expect(macs.rows.filter((m) => m.mac === null || macKekId(m.mac) !== newKek).map((m) => m.row)).toEqual([]);
    } finally {
      await sql.end();
    }

    for (const s of [a, b]) {
      for (let i = 0; i < 12; i++) {
        const got = await s.call<Secret>("getSecret", { mesh: "m", name: `s-${i}` }, bob);
        expect(Buffer.from(got.data.v!).toString()).toBe(`rot-${i}-v2`);
        const first = await s.call<Secret>("getSecret", { mesh: "m", name: `s-${i}`, version: 1 }, alice);
        expect(Buffer.from(first.data.v!).toString()).toBe(`rot-${i}-v1`);
      }
      const listed = await s.call<{ secrets: Secret[] }>("listSecrets", { mesh: "m" }, bob);
      expect(listed.secrets).toHaveLength(12);
      // A retry of a create request (its row re-keyed too) answers with the secret it made.
      const retry = await s.call<Secret>("createSecret", { mesh: "m", name: "s-0", stringData: { v: "rot-0-v1" }, requestId: "req-0" }, alice);
      expect(retry.name).toBe("s-0");
    }
    // New writes after the rotation are sealed and MACed under the new KEK on both replicas.
    await b.call("grantAccess", { mesh: "m", name: "s-1", subject: "user:carol", permission: Permission.PERMISSION_READ }, alice);
    expect(a.app.keyring.active.id).toBe(newKek);
  });
});
