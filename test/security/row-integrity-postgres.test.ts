/**
 * The row-integrity suite (row-integrity-suite.ts) on PostgreSQL: the database behind two
 * secretd replicas, edited in plain SQL on the shared database. Then PostgreSQL's own
 * cases: grant writes racing through both replicas, and replicas starting together on a
 * database whose rows predate row MACs give every row its MAC exactly once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALICE, BOB, M, codeOf, listed, read, runRowIntegritySuite } from "./row-integrity-suite.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { Sql } from "../../src/storage/sql/sql.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(() => cluster?.stop());

runRowIntegritySuite("PostgreSQL, two replicas", async () => {
  const url = await cluster.createDatabase();
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-pg-rows-"));
  // One data dir for both replicas: the same KEK and JWT key.
  const start = (): Promise<TestServer> => startTestServer({ databaseUrl: url, dataDir });
  const servers = [await start(), await start()];
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    servers,
    doctorArgs: ["--data-dir", dataDir, "--database-url", url],
    async edit(edits) {
      await client.query("BEGIN");
      for (const [q, binds] of edits) await client.query(q.pg, q.values(binds));
      await client.query("COMMIT");
    },
    async rows<T>(q: Sql, binds: object = {}): Promise<T[]> {
      return (await client.query(q.pg, q.values(binds))).rows as T[];
    },
    async restart(between) {
      for (const s of servers.splice(0)) await s.stop();
      await between();
      servers.push(await start(), await start());
    },
    async close() {
      await client.end();
      for (const s of servers) await s.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

describe("grant writes racing through two replicas", () => {
  it("when 16 grants and revokes on one secret race through both replicas, then each answers OK or ABORTED, and the grant set stays authenticated with exactly the OK ones", { timeout: 60_000 }, async () => {
    const url = await cluster.createDatabase();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-pg-race-"));
    const a = await startTestServer({ databaseUrl: url, dataDir });
    const b = await startTestServer({ databaseUrl: url, dataDir });
    try {
      const alice = await a.token(ALICE);
      await a.call("createSecret", { mesh: M, name: "raced", stringData: { v: "raced-v1" } }, alice);
      await a.call("grantAccess", { mesh: M, name: "raced", subject: "user:gone", permission: Permission.PERMISSION_READ }, alice);
      const codes = await Promise.all([
        ...Array.from({ length: 15 }, (_, i) =>
          codeOf((i % 2 === 0 ? a : b).call("grantAccess", { mesh: M, name: "raced", subject: `user:u${i}`, permission: Permission.PERMISSION_READ }, alice)),
        ),
        codeOf(b.call("revokeAccess", { mesh: M, name: "raced", subject: "user:gone" }, alice)),
      ]);
      for (const c of codes) expect([status.OK, status.ABORTED]).toContain(c);
      const granted = codes.slice(0, 15).flatMap((c, i) => (c === status.OK ? [`user:u${i}`] : []));
      const revoked = codes[15] === status.OK;
      for (const s of [a, b]) {
        expect(await read(s, alice, "raced")).toBe("raced-v1");
        const grants = await s.call<{ grants: { subject: string }[] }>("listGrants", { mesh: M, name: "raced" }, alice);
        expect(grants.grants.map((g) => g.subject).sort()).toEqual([...granted, ...(revoked ? [] : ["user:gone"])].sort());
      }
    } finally {
      await b.stop();
      await a.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("replicas starting together on a PostgreSQL database made before row MACs", () => {
  it("when two replicas start at once, then exactly one gives every row its MAC, both serve every secret, and a MAC nulled afterwards is DATA_LOSS", { timeout: 90_000 }, async () => {
    const url = await cluster.createDatabase();
    // One data dir for every replica (KEK, JWT key), kept across their restarts.
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-pg-legacy-"));
    let first = await startTestServer({ databaseUrl: url, dataDir });
    let alice = await first.token(ALICE);
    const v1 = await first.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
    await first.call("updateSecret", { mesh: M, name: "old-1", etag: v1.etag, stringData: { v: "old-1-v2" } }, alice);
    await first.call("createSecret", { mesh: M, name: "old-2", stringData: { v: "old-2-v1" }, immutable: true }, alice);
    await first.call("grantAccess", { mesh: M, name: "old-2", subject: "user:bob", permission: Permission.PERMISSION_READ }, alice);
    await first.stop();

    // The state migration 3 leaves on a database of an older secretd: no MAC anywhere, the mark set.
    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    try {
      await sql.query("UPDATE secrets SET mac = NULL, grants_mac = NULL");
      await sql.query("UPDATE secret_versions SET mac = NULL");
      await sql.query("UPDATE create_requests SET mac = NULL");
      await sql.query("INSERT INTO mac_backfill (id) VALUES (1)");

      const [a, b] = await Promise.all([startTestServer({ databaseUrl: url, dataDir }), startTestServer({ databaseUrl: url, dataDir })]);
      try {
        const backfilled = [...a.logs, ...b.logs].filter((l) => l.includes("made before row MACs"));
        expect(backfilled).toHaveLength(1);
        expect(JSON.parse(backfilled[0]!).rows).toBe(2 + 2 + 3 + 1); // 2 secret rows, 2 grant sets, 3 versions, 1 create request
        alice = await a.token(ALICE);
        const bob = await a.token(BOB);
        for (const s of [a, b]) {
          expect(await read(s, alice, "old-1")).toBe("old-1-v2");
          expect(await read(s, alice, "old-1", { version: 1 })).toBe("old-1-v1");
          expect(await read(s, bob, "old-2")).toBe("old-2-v1");
          expect((await listed(s, alice)).sort()).toEqual(["old-1", "old-2"]);
        }
        const retry = await b.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
        expect(retry.uid).toBe(v1.uid);
        const nulls = await sql.query<{ n: string }>(
          "SELECT (SELECT count(*) FROM secrets WHERE mac IS NULL OR grants_mac IS NULL) + (SELECT count(*) FROM secret_versions WHERE mac IS NULL) AS n",
        );
        expect(Number(nulls.rows[0]!.n)).toBe(0);
        expect((await sql.query("SELECT 1 FROM mac_backfill")).rowCount).toBe(0);

        // The mark forged again after MACs exist is refused; nulling a MAC is no way back.
        await sql.query("UPDATE secrets SET mac = NULL, immutable = false WHERE name = 'old-2'");
        await sql.query("INSERT INTO mac_backfill (id) VALUES (1)");
        first = await startTestServer({ databaseUrl: url, dataDir });
        try {
          expect(first.logs.some((l) => l.includes("refused"))).toBe(true);
          expect(await read(first, alice, "old-2")).toBe(status.DATA_LOSS);
          expect(await read(a, alice, "old-2")).toBe(status.DATA_LOSS);
          expect(await read(first, alice, "old-1")).toBe("old-1-v2");
        } finally {
          await first.stop();
        }
      } finally {
        await b.stop();
        await a.stop();
      }
    } finally {
      await sql.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
