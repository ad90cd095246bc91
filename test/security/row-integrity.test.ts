/**
 * Plain SQL on the database file by someone who holds no KEK (issue #16, item 13): rolling
 * a secret back to an older version, making oneself owner, adding, widening, reviving or
 * removing a grant, lifting immutability or expiry, nulling a MAC, re-pointing a create
 * request, and forging the backfill mark. Each must answer DATA_LOSS for the secret
 * touched (the message a bad ciphertext gets), leave it out of listings, and leave every
 * other secret served. Then a database made by the migrations before row MACs gets its
 * MACs once at start, and never again.
 */
import { mkdtempSync, rmSync, unlinkSync, existsSync, renameSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALICE, BOB, MALLORY, M, codeOf, listed, read } from "./row-integrity-suite.js";
import { DB_FILE } from "../../src/storage/open-storage.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { MIGRATIONS } from "../../src/storage/sqlite/migrations.js";
import { runCli } from "../helpers/cli.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

/**
 * The log lines matching `pred`, once there is one: a --workers server (SECRETD_E2E_WORKERS)
 * writes its logs through a buffer flushed every second, so a line may arrive after start.
 */
async function logged(s: TestServer, pred: (line: string) => boolean): Promise<string[]> {
  for (let end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    if (s.logs.some(pred)) break;
  }
  return s.logs.filter(pred);
}

describe("plain SQL edits of metadata rows", () => {
  let s: TestServer;
  let dataDir: string;
  let db: Database.Database;
  let alice: string;
  let mallory: string;
  let bob: string;
  let savedReplayRow: Record<string, unknown>;

  const uidOf = (name: string): string => (db.prepare("SELECT uid FROM secrets WHERE tenant = 'acme' AND mesh = ? AND name = ?").get(M, name) as { uid: string }).uid;
  const create = (name: string, extra: object = {}): Promise<Secret> => s.call<Secret>("createSecret", { mesh: M, name, stringData: { v: `${name}-v1` }, ...extra }, alice);

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-rows-"));
    s = await startTestServer({ dataDir });
    [alice, mallory, bob] = await Promise.all([s.token(ALICE), s.token(MALLORY), s.token(BOB)]);
    for (const n of ["keep", "owned", "granted", "nulled", "deleted-grant"]) await create(n);
    await create("frozen", { immutable: true });
    await create("expired", { expireTime: new Date(s.clock.now() + s.clock.lapseMs) });
    await create("widened", { stringData: { a: "widened-a", b: "widened-b" } });
    await create("revived");
    await create("req-a", { requestId: "req-1" });
    await create("req-b");
    for (const n of ["rollback", "replay"]) {
      const v1 = await create(n);
      if (n === "replay") db = new Database(path.join(dataDir, DB_FILE));
      if (n === "replay") savedReplayRow = db.prepare("SELECT * FROM secrets WHERE uid = ?").get(uidOf(n)) as Record<string, unknown>;
      await s.call("updateSecret", { mesh: M, name: n, etag: v1.etag, stringData: { v: `${n}-v2` } }, alice);
    }
    db.pragma("busy_timeout = 5000");
    const grant = (name: string, permission: Permission, extra: object = {}) => s.call("grantAccess", { mesh: M, name, subject: "user:bob", permission, ...extra }, alice);
    await grant("widened", Permission.PERMISSION_READ, { keys: ["a"] });
    await grant("revived", Permission.PERMISSION_READ, { expireTime: new Date(s.clock.now() + s.clock.lapseMs) });
    await grant("deleted-grant", Permission.PERMISSION_READ);
    await s.clock.advance(s.clock.lapseMs + 100); // "expired" and bob's grant on "revived" are past their expire_time now
  }, 30_000);

  afterAll(async () => {
    db?.close();
    await s?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("when nothing was touched, then each secret answers as its rows say", async () => {
    expect(await read(s, alice, "rollback")).toBe("rollback-v2");
    expect(await read(s, alice, "replay")).toBe("replay-v2");
    expect(await read(s, mallory, "owned")).toBe(status.NOT_FOUND);
    expect(await read(s, mallory, "granted")).toBe(status.NOT_FOUND);
    expect(await read(s, bob, "widened", { key: "a" })).toBe("widened-a");
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "widened", keys: ["b"] }, bob))).toBe(status.PERMISSION_DENIED);
    expect(await read(s, bob, "revived")).toBe(status.NOT_FOUND);
    expect(await read(s, alice, "expired")).toBe(status.FAILED_PRECONDITION);
    expect(await read(s, bob, "deleted-grant")).toBe("deleted-grant-v1");
    const frozen = await s.call<Secret>("getSecret", { mesh: M, name: "frozen" }, alice);
    expect(await codeOf(s.call("updateSecret", { mesh: M, name: "frozen", etag: frozen.etag, stringData: { v: "x" } }, alice))).toBe(status.FAILED_PRECONDITION);
    expect(await listed(s, mallory)).toEqual([]);
  });

  it("when rows are edited by plain SQL, then DATA_LOSS for those secrets only, they leave listings, and every other secret is still served", async () => {
    const u = uidOf;
    // Roll the current-version pointer back (the older version row is still stored and opens).
    db.prepare("UPDATE secrets SET version = 1 WHERE uid = ?").run(u("rollback"));
    // Restore a whole older copy of the row, its MAC included, while the newer version is stored.
    const cols = Object.keys(savedReplayRow);
    db.prepare(`UPDATE secrets SET ${cols.map((c) => `${c} = @${c}`).join(", ")} WHERE uid = @uid`).run(savedReplayRow);
    // Make oneself owner; add a grant to oneself.
    db.prepare("UPDATE secrets SET owner = 'mallory' WHERE uid = ?").run(u("owned"));
    db.prepare("INSERT INTO grants (secret_uid, subject, permission, keys, expire_time, granted_by, create_time) VALUES (?, 'user:mallory', 2, '[]', NULL, 'alice', 1)").run(u("granted"));
    // Widen a key-limited READ grant to ADMIN on every key; revive an expired grant.
    db.prepare("UPDATE grants SET permission = 4, keys = '[]' WHERE secret_uid = ? AND subject = 'user:bob'").run(u("widened"));
    db.prepare("UPDATE grants SET expire_time = NULL WHERE secret_uid = ? AND subject = 'user:bob'").run(u("revived"));
    // Remove a grant row (no row left to carry a MAC of its own).
    db.prepare("DELETE FROM grants WHERE secret_uid = ?").run(u("deleted-grant"));
    // Lift immutability; lift an expiry that has passed.
    db.prepare("UPDATE secrets SET immutable = 0 WHERE uid = ?").run(u("frozen"));
    db.prepare("UPDATE secrets SET expire_time = NULL WHERE uid = ?").run(u("expired"));
    // Null the MAC itself.
    db.prepare("UPDATE secrets SET mac = NULL WHERE uid = ?").run(u("nulled"));
    // Re-point a create request at another secret.
    db.prepare("UPDATE create_requests SET secret_uid = ? WHERE request_id = 'req-1'").run(u("req-b"));

    for (let round = 0; round < 2; round++) {
      expect(await read(s, alice, "rollback")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "rollback", { version: 1 })).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "replay")).toBe(status.DATA_LOSS);
      expect(await read(s, mallory, "owned")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "owned")).toBe(status.DATA_LOSS);
      expect(await read(s, mallory, "granted")).toBe(status.DATA_LOSS);
      expect(await read(s, bob, "widened", { key: "b" })).toBe(status.DATA_LOSS);
      expect(await read(s, bob, "revived")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "deleted-grant")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "expired")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "nulled")).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("updateSecret", { mesh: M, name: "frozen", etag: "any", stringData: { v: "x" } }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("grantAccess", { mesh: M, name: "granted", subject: "user:eve", permission: Permission.PERMISSION_READ }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("createSecret", { mesh: M, name: "req-a", stringData: { v: "req-a-v1" }, requestId: "req-1" }, alice))).toBe(status.DATA_LOSS);
      expect(await codeOf(s.call("projectSecrets", { mesh: M, items: [{ name: "revived" }] }, bob))).toBe(status.DATA_LOSS);
      // Every other secret is served as before.
      expect(await read(s, alice, "keep")).toBe("keep-v1");
      expect(await read(s, alice, "req-b")).toBe("req-b-v1");
    }
    // Listings leave the tampered rows out; mallory sees nothing, bob sees no revived or widened secret.
    expect(await listed(s, mallory)).toEqual([]);
    expect(await listed(s, bob)).toEqual([]);
    const mine = await listed(s, alice);
    expect(mine).toEqual(expect.arrayContaining(["keep", "req-a", "req-b", "granted", "widened", "revived", "deleted-grant"]));
    for (const n of ["rollback", "replay", "frozen", "expired", "nulled", "owned"]) expect(mine).not.toContain(n);
    expect(await logged(s, (l) => l.includes("failed to authenticate") && l.includes('"name":"frozen"'))).not.toEqual([]);
    // Writes go on.
    await create("after");
    expect(await read(s, alice, "after")).toBe("after-v1");
  });

  it("when `secretd doctor` runs on the edited file next to the server, then it names every secret whose rows do not authenticate, with what failed, no value, and exits 1", async () => {
    const r = await runCli(["doctor", "--data-dir", dataDir]);
    expect(r.status).toBe(1);
    const failing = r.out.split("\n").filter((l) => l.startsWith("FAIL") && l.includes("rows do not authenticate"));
    const named = failing.map((l) => /secret "([^"]+)"/.exec(l)![1]).sort();
    // req-b holds the re-pointed create request now: that row's MAC binds it to req-a.
    expect(named).toEqual(["deleted-grant", "expired", "frozen", "granted", "nulled", "owned", "replay", "req-b", "revived", "rollback", "widened"]);
    expect(failing.find((l) => l.includes('"rollback"'))).toContain("(rollback)");
    expect(failing.find((l) => l.includes('"nulled"'))).toContain("no MAC");
    expect(failing.find((l) => l.includes('"granted"'))).toContain("grants of secret");
    expect(r.out).toMatch(/checked the row MACs of \d+ secrets: \d+ authenticate, 11 do not/);
    for (const v of ["keep-v1", "rollback-v2", "widened-b", "req-b-v1"]) expect(r.out + r.err).not.toContain(v);
  });

  it("when the backfill mark is forged after MACs exist, then a restart refuses the backfill and the nulled MAC stays DATA_LOSS", async () => {
    db.close();
    await s.stop();
    const raw = new Database(path.join(dataDir, DB_FILE));
    raw.prepare("INSERT INTO mac_backfill (id) VALUES (1)").run();
    raw.close();
    s = await startTestServer({ dataDir });
    db = new Database(path.join(dataDir, DB_FILE));
    alice = await s.token(ALICE);
    expect(await logged(s, (l) => l.includes("refused"))).not.toEqual([]);
    expect(await read(s, alice, "nulled")).toBe(status.DATA_LOSS);
    expect(await read(s, alice, "frozen")).toBe(status.DATA_LOSS);
    expect(await read(s, alice, "keep")).toBe("keep-v1");
  });
});

describe("a database made before row MACs", () => {
  it("when a server starts on it, then every row gets its MAC once, everything reads as before, and a MAC nulled afterwards is DATA_LOSS", { timeout: 60_000 }, async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-legacy-"));
    try {
      // Rows as a server writes them, then copied column by column into a file made by the migrations before 7.
      let s = await startTestServer({ dataDir });
      let alice = await s.token(ALICE);
      const v1 = await s.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
      await s.call("updateSecret", { mesh: M, name: "old-1", etag: v1.etag, stringData: { v: "old-1-v2" } }, alice);
      await s.call("createSecret", { mesh: M, name: "old-2", stringData: { v: "old-2-v1" }, immutable: true }, alice);
      await s.call("grantAccess", { mesh: M, name: "old-2", subject: "user:bob", permission: Permission.PERMISSION_READ }, alice);
      await s.stop();

      const file = path.join(dataDir, DB_FILE);
      const legacyFile = path.join(dataDir, "legacy.db");
      const legacy = new Database(legacyFile);
      legacy.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
      // The migrations listed before row MACs (sec2's 6 is listed after 7).
      for (const m of MIGRATIONS.slice(0, MIGRATIONS.findIndex((x) => x.id === 7))) {
        legacy.exec(m.sql);
        legacy.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, ?)").run(m.id, Date.now());
      }
      legacy.prepare("ATTACH DATABASE ? AS cur").run(file);
      for (const table of ["secrets", "secret_versions", "grants", "create_requests"]) {
        const cols = (legacy.prepare(`SELECT name FROM pragma_table_info('${table}')`).pluck().all() as string[]).join(", ");
        legacy.exec(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM cur.${table}`);
      }
      legacy.exec("DETACH DATABASE cur");
      expect(legacy.prepare("SELECT count(*) FROM pragma_table_info('secrets') WHERE name = 'mac'").pluck().get()).toBe(0);
      legacy.close();
      for (const suffix of ["", "-wal", "-shm"]) if (existsSync(file + suffix)) unlinkSync(file + suffix);
      renameSync(legacyFile, file);

      s = await startTestServer({ dataDir });
      alice = await s.token(ALICE);
      const bob = await s.token(BOB);
      const backfilled = await logged(s, (l) => l.includes("made before row MACs"));
      expect(backfilled).toHaveLength(1);
      expect(JSON.parse(backfilled[0]!).rows).toBe(2 + 2 + 3 + 1); // 2 secret rows, 2 grant sets, 3 versions, 1 create request
      expect(await read(s, alice, "old-1")).toBe("old-1-v2");
      expect(await read(s, alice, "old-1", { version: 1 })).toBe("old-1-v1");
      expect(await read(s, bob, "old-2")).toBe("old-2-v1");
      expect((await listed(s, alice)).sort()).toEqual(["old-1", "old-2"]);
      // The create request is authenticated too: a retry answers with the secret it made.
      const retry = await s.call<Secret>("createSecret", { mesh: M, name: "old-1", stringData: { v: "old-1-v1" }, requestId: "old-req" }, alice);
      expect(retry.uid).toBe(v1.uid);
      await s.stop();

      // Nulling a MAC afterwards is no way back to "unauthenticated".
      const raw = new Database(file);
      expect(raw.prepare("SELECT count(*) FROM secrets WHERE mac IS NULL OR grants_mac IS NULL").pluck().get()).toBe(0);
      expect(raw.prepare("SELECT count(*) FROM secret_versions WHERE mac IS NULL").pluck().get()).toBe(0);
      raw.prepare("UPDATE secrets SET mac = NULL, immutable = 0 WHERE name = 'old-2'").run();
      raw.close();
      s = await startTestServer({ dataDir });
      alice = await s.token(ALICE);
      expect(s.logs.filter((l) => l.includes("made before row MACs"))).toEqual([]);
      expect(await read(s, alice, "old-2")).toBe(status.DATA_LOSS);
      expect(await read(s, alice, "old-1")).toBe("old-1-v2");
      await s.stop();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
