/**
 * Issue #16 item 13 on PostgreSQL: someone with SQL access to the database (a DBA, a
 * leaked connection string) but no KEK edits rows behind two secretd replicas. Each edit
 * of row-integrity.test.ts, done in plain SQL on the shared database, must answer
 * DATA_LOSS for the secret touched through either replica, leave it out of listings, and
 * leave every other secret served. Then replicas starting together on a database whose
 * rows predate row MACs give every row its MAC exactly once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALICE, BOB, MALLORY, M, codeOf, listed, read, sleep } from "./row-integrity-suite.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";


let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(() => cluster?.stop());

describe("plain SQL edits on the PostgreSQL database behind two replicas", () => {
  let a: TestServer;
  let b: TestServer;
  let sql: pg.Client;
  let alice: string;
  let mallory: string;
  let bob: string;
  let savedReplayRow: Record<string, unknown>;

  const uidOf = async (name: string): Promise<string> =>
    (await sql.query<{ uid: string }>("SELECT uid FROM secrets WHERE tenant = 'acme' AND mesh = $1 AND name = $2", [M, name])).rows[0]!.uid;
  const create = (name: string, extra: object = {}): Promise<Secret> => a.call<Secret>("createSecret", { mesh: M, name, stringData: { v: `${name}-v1` }, ...extra }, alice);

  beforeAll(async () => {
    const url = await cluster.createDatabase();
    a = await startTestServer({ databaseUrl: url });
    b = await startTestServer({ databaseUrl: url, dataDir: a.dataDir }); // same KEK and JWT key
    sql = new pg.Client({ connectionString: url });
    await sql.connect();
    [alice, mallory, bob] = await Promise.all([a.token(ALICE), a.token(MALLORY), a.token(BOB)]);
    for (const n of ["keep", "owned", "granted", "nulled", "copied-mac", "deleted-grant"]) await create(n);
    await create("frozen", { immutable: true });
    await create("expired", { expireTime: new Date(Date.now() + 1500) });
    await create("widened", { stringData: { a: "widened-a", b: "widened-b" } });
    await create("revived");
    await create("req-a", { requestId: "req-1" });
    await create("req-b");
    for (const n of ["rollback", "replay"]) {
      const v1 = await create(n);
      if (n === "replay") savedReplayRow = (await sql.query("SELECT * FROM secrets WHERE uid = $1", [await uidOf(n)])).rows[0] as Record<string, unknown>;
      await b.call("updateSecret", { mesh: M, name: n, etag: v1.etag, stringData: { v: `${n}-v2` } }, alice);
    }
    const grant = (name: string, permission: Permission, extra: object = {}) => b.call("grantAccess", { mesh: M, name, subject: "user:bob", permission, ...extra }, alice);
    await grant("widened", Permission.PERMISSION_READ, { keys: ["a"] });
    await grant("revived", Permission.PERMISSION_READ, { expireTime: new Date(Date.now() + 1500) });
    await grant("deleted-grant", Permission.PERMISSION_READ);
    await sleep(1600); // "expired" and bob's grant on "revived" are past their expire_time now
  }, 60_000);

  afterAll(async () => {
    await sql?.end();
    await b?.stop();
    await a?.stop();
  });

  it("when nothing was touched, then both replicas answer as the rows say", async () => {
    for (const s of [a, b]) {
      expect(await read(s, alice, "rollback")).toBe("rollback-v2");
      expect(await read(s, alice, "replay")).toBe("replay-v2");
      expect(await read(s, mallory, "owned")).toBe(status.NOT_FOUND);
      expect(await read(s, bob, "widened", { key: "a" })).toBe("widened-a");
      expect(await read(s, bob, "revived")).toBe(status.NOT_FOUND);
      expect(await read(s, alice, "expired")).toBe(status.FAILED_PRECONDITION);
      expect(await read(s, bob, "deleted-grant")).toBe("deleted-grant-v1");
      expect(await listed(s, mallory)).toEqual([]);
    }
  });

  it("when rows are edited by plain SQL, then DATA_LOSS for those secrets only through either replica, they leave listings, and every other secret is still served", async () => {
    const u = uidOf;
    await sql.query("UPDATE secrets SET version = 1 WHERE uid = $1", [await u("rollback")]);
    // An older genuine copy of the whole row, its MAC included, while the newer version is stored.
    const cols = Object.keys(savedReplayRow).filter((c) => c !== "uid");
    await sql.query(`UPDATE secrets SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(", ")} WHERE uid = $1`, [savedReplayRow.uid, ...cols.map((c) => savedReplayRow[c])]);
    await sql.query("UPDATE secrets SET owner = 'mallory' WHERE uid = $1", [await u("owned")]);
    await sql.query("INSERT INTO grants (secret_uid, subject, permission, keys, expire_time, granted_by, create_time) VALUES ($1, 'user:mallory', 2, '[]', NULL, 'alice', 1)", [await u("granted")]);
    await sql.query("UPDATE grants SET permission = 4, keys = '[]' WHERE secret_uid = $1 AND subject = 'user:bob'", [await u("widened")]);
    await sql.query("UPDATE grants SET expire_time = NULL WHERE secret_uid = $1 AND subject = 'user:bob'", [await u("revived")]);
    await sql.query("DELETE FROM grants WHERE secret_uid = $1", [await u("deleted-grant")]);
    await sql.query("UPDATE secrets SET immutable = false WHERE uid = $1", [await u("frozen")]);
    await sql.query("UPDATE secrets SET expire_time = NULL WHERE uid = $1", [await u("expired")]);
    await sql.query("UPDATE secrets SET mac = NULL WHERE uid = $1", [await u("nulled")]);
    // Another row's genuine MAC does not fit: it is bound to that row's uid and fields.
    await sql.query("UPDATE secrets SET mac = (SELECT mac FROM secrets WHERE name = 'keep') WHERE uid = $1", [await u("copied-mac")]);
    await sql.query("UPDATE create_requests SET secret_uid = $1 WHERE request_id = 'req-1'", [await u("req-b")]);

    for (const s of [a, b]) {
      expect(await read(s, alice, "rollback")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "rollback", { version: 1 })).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "replay")).toBe(status.DATA_LOSS);
      expect(await read(s, mallory, "owned")).toBe(status.DATA_LOSS);
      expect(await read(s, mallory, "granted")).toBe(status.DATA_LOSS);
      expect(await read(s, bob, "widened", { key: "b" })).toBe(status.DATA_LOSS);
      expect(await read(s, bob, "revived")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "deleted-grant")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "expired")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "nulled")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "copied-mac")).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("updateSecret", { mesh: M, name: "frozen", etag: "any", stringData: { v: "x" } }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("grantAccess", { mesh: M, name: "granted", subject: "user:eve", permission: Permission.PERMISSION_READ }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("createSecret", { mesh: M, name: "req-a", stringData: { v: "req-a-v1" }, requestId: "req-1" }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("projectSecrets", { mesh: M, items: [{ name: "revived" }] }, bob))).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "keep")).toBe("keep-v1");
      expect(await read(s, alice, "req-b")).toBe("req-b-v1");
      expect(await listed(s, mallory)).toEqual([]);
      expect(await listed(s, bob)).toEqual([]);
      const mine = await listed(s, alice);
      expect(mine).toEqual(expect.arrayContaining(["keep", "req-a", "req-b", "granted", "widened", "revived", "deleted-grant"]));
      for (const n of ["rollback", "replay", "frozen", "expired", "nulled", "copied-mac", "owned"]) expect(mine).not.toContain(n);
    }
    expect(a.logs.some((l) => l.includes("failed to authenticate") && l.includes('"name":"frozen"'))).toBe(true);
    // Writes go on, through both.
    await create("after");
    expect(await read(b, alice, "after")).toBe("after-v1");
  });
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
