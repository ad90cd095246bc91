import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/storage/sqlite/migrations.js";
import { ReadCache } from "../../src/storage/read-cache.js";
import { SqliteAuditWriter } from "../../src/storage/sqlite/sqlite-audit-writer.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import { listAuditSql } from "../../src/storage/sql/statements.js";
import { auditKeysJson, auditRowBytes } from "../../src/storage/audit-row-bytes.js";
import type { Storage } from "../../src/storage/storage.js";
import { auditRow, eventually, recorder, runStorageConformance, secretRow, versionRow, type StorageFactory } from "./storage-suite.js";
import { runRotationConformance } from "./rotation-suite.js";
import { runScheduleConformance } from "./schedule-suite.js";

const dirs = new Map<Storage, string>();

const factory: StorageFactory = {
  async open(options) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-conf-"));
    const feed = options?.feedRetain === undefined ? {} : { retain: options.feedRetain, pruneEvery: 2 };
    const st = new SqliteStorage(path.join(dir, "db.sqlite"), { feed });
    dirs.set(st, dir);
    return st;
  },
  async openPeer(st) {
    return new SqliteStorage(path.join(dirs.get(st)!, "db.sqlite"));
  },
  async destroy(st) {
    await st.close();
    rmSync(dirs.get(st)!, { recursive: true, force: true });
  },
};
runStorageConformance("sqlite", factory);
runRotationConformance("sqlite", factory);
runScheduleConformance("sqlite", factory);

describe("sqlite specifics", () => {
  it("when a WAL database is reopened, then synchronous is FULL, foreign keys and secure_delete are on, migrations ran once", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    for (let i = 0; i < 2; i++) {
      const st = new SqliteStorage(file);
      await st.close();
    }
    // What a plain reopen gives: WAL persists, but synchronous falls back to the default.
    const raw = new Database(file);
    expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(raw.prepare("SELECT count(*) FROM schema_migrations").pluck().get()).toBeGreaterThanOrEqual(2);
    raw.close();
    const st = new SqliteStorage(file);
    const db = (st as unknown as { db: Database.Database }).db;
    expect(db.pragma("synchronous", { simple: true })).toBe(2);
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("secure_delete", { simple: true })).toBe(1);
    expect(db.pragma("cache_size", { simple: true })).toBe(-4096);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when old versions are destroyed, then their bytes no longer appear anywhere in the database files", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    let s = secretRow();
    await st.insertSecret(s, versionRow(s, 1, "OLD-CIPHERTEXT-MARKER-1"));
    for (let v = 2; v <= 3; v++) {
      const next = { ...s, version: v, etag: `e${v}` };
      await st.updateSecret(next, versionRow(next, v, `payload-${v}`), s.etag, 1);
      s = next;
    }
    await st.close();
    const { readFileSync, readdirSync } = await import("node:fs");
    for (const f of readdirSync(dir)) expect(readFileSync(path.join(dir, f)).includes("OLD-CIPHERTEXT-MARKER-1")).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a database written before migration 4 is opened, then every version survives the move to a rowid table and reads back", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const old = new Database(file);
    old.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
    for (const m of MIGRATIONS.filter((m) => m.id <= 3)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, 0)").run(m.id);
    }
    const s = secretRow({ version: 2 });
    old.prepare(
      `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time)
       VALUES (?, ?, ?, ?, 'Opaque', '', 'owner', '{}', '{}', 0, 2, ?, '["k"]', 1, 1)`,
    ).run(s.uid, s.tenant, s.mesh, s.name, s.etag);
    const insertVersion = old.prepare("INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time) VALUES (?, ?, '[\"k\"]', ?, ?, 1)");
    insertVersion.run(s.uid, 1, Buffer.from("dek-1"), Buffer.alloc(1200, 1));
    insertVersion.run(s.uid, 2, Buffer.from("dek-2"), Buffer.alloc(1200, 2));
    old.close();

    const st = new SqliteStorage(file);
    for (const [version, byte] of [[1, 1], [2, 2], [0, 2]] as const) {
      const got = await st.readSecret({ tenant: s.tenant, mesh: s.mesh }, s.name, version);
      expect(Buffer.from(got!.version!.payload).equals(Buffer.alloc(1200, byte))).toBe(true);
    }
    const db = (st as unknown as { db: Database.Database }).db;
    const ddl = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'secret_versions'").pluck().get() as string;
    expect(ddl).not.toMatch(/WITHOUT ROWID/i);
    expect(ddl).toMatch(/REFERENCES secrets \(uid\) ON DELETE CASCADE/);
    expect(db.pragma("foreign_key_check")).toEqual([]);
    expect(db.prepare("SELECT name FROM sqlite_schema WHERE name = 'secrets_owner'").all()).toEqual([]); // migration 5
    await st.deleteSecret(s.uid, undefined); // the cascade still reaches the versions
    expect(db.prepare("SELECT count(*) FROM secret_versions").pluck().get()).toBe(0);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a database written before migration 19 is opened, then its audit events list with no stage, their stored sizes still right, and new ones keep theirs", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const old = new Database(file);
    old.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
    for (const m of MIGRATIONS.filter((m) => m.id <= 18)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, 0)").run(m.id);
    }
    const before = auditRow({ requestId: "rid-before-19", time: 5 });
    const keys = auditKeysJson(before.keys);
    const size = auditRowBytes(before, keys);
    old.prepare(
      `INSERT INTO audit_events (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(before.tenant, before.time, before.requestId, before.method, before.sub, before.mesh, before.name, before.version, keys, before.code, before.peer, size);
    old.prepare("UPDATE audit_usage SET bytes = ? WHERE id = 1").run(size);
    old.close();

    const st = new SqliteStorage(file);
    await st.appendAudit([auditRow({ requestId: "rid-after-19", time: 6, stage: "previous" })]);
    const listed = await st.listAudit(before.tenant, { after: undefined, limit: 10 });
    expect(listed.map((e) => [e.requestId, e.stage])).toEqual([
      ["rid-before-19", ""],
      ["rid-after-19", "previous"],
    ]);
    const db = (st as unknown as { db: Database.Database }).db;
    // The sizes --audit-max-bytes sums: the old row's as stored, the new one's counting its stage.
    const sizes = db.prepare("SELECT request_id, size FROM audit_events ORDER BY id").all() as Array<{ request_id: string; size: number }>;
    expect(sizes).toEqual([
      { request_id: "rid-before-19", size: auditRowBytes({ ...before, stage: "" }, keys) },
      { request_id: "rid-after-19", size: auditRowBytes(listed[1]!, keys) },
    ]);
    expect(sizes[1]!.size - sizes[0]!.size).toBe(Buffer.byteLength("previous") + Buffer.byteLength("rid-after-19") - Buffer.byteLength("rid-before-19"));
    expect(db.prepare("SELECT bytes FROM audit_usage WHERE id = 1").pluck().get()).toBe(sizes[0]!.size + sizes[1]!.size);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a database written before migration 16 is opened, then its watch rows (sent revisions, acks) and their sources survive the move to a rowid table, cascade kept", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const old = new Database(file);
    old.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
    for (const m of MIGRATIONS.filter((m) => m.id <= 15)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, 0)").run(m.id);
    }
    const s = secretRow();
    old.prepare(
      `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time)
       VALUES (?, ?, ?, ?, 'Opaque', '', 'owner', '{}', '{}', 0, 1, ?, '["k"]', 1, 1)`,
    ).run(s.uid, s.tenant, s.mesh, s.name, s.etag);
    old.prepare("INSERT INTO consumer_replicas (replica, last_seen, expire_time) VALUES ('r1', 1, ?)").run(Date.now() + 3_600_000);
    const sent = "x".repeat(1100); // what a watch's row holds after SENT_KEPT sends: an overflow page in WITHOUT ROWID
    old.prepare(
      `INSERT INTO consumer_watches (watch_id, replica, tenant, sub, roles, revision, since, sent, applied_seq, applied_revision, applied_time, applied)
       VALUES ('w1', 'r1', ?, 'pete', '["sidecar"]', 'rev-2', 5, ?, 2, 'rev-2', 7, '[]')`,
    ).run(s.tenant, sent);
    old.prepare("INSERT INTO consumer_watch_sources (secret_uid, watch_id) VALUES (?, 'w1')").run(s.uid);
    old.close();

    const st = new SqliteStorage(file);
    const db = (st as unknown as { db: Database.Database }).db;
    const ddl = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 'consumer_watches'").pluck().get() as string;
    expect(ddl).not.toMatch(/WITHOUT ROWID/i);
    expect(db.prepare("SELECT watch_id, sub, revision, since, sent, applied_seq, applied_revision, applied_time FROM consumer_watches").all()).toEqual([
      { watch_id: "w1", sub: "pete", revision: "rev-2", since: 5, sent, applied_seq: 2, applied_revision: "rev-2", applied_time: 7 },
    ]);
    const leases = await st.listLeases(s.uid, Date.now());
    expect(leases.map((l) => [l.watchId, l.sub, l.appliedRevision])).toEqual([["w1", "pete", "rev-2"]]);
    expect(db.pragma("foreign_key_check")).toEqual([]);
    expect(db.prepare("SELECT name FROM sqlite_temp_schema").all()).toEqual([]);
    await st.deleteLeases("w1", undefined); // the sources go with their watch (cascade)
    expect(db.prepare("SELECT count(*) FROM consumer_watch_sources").pluck().get()).toBe(0);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a database written before migration 6 (but with 7's row MACs) is opened, then its create request ids belong to their secrets' owners, MACs kept", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const old = new Database(file);
    old.exec("CREATE TABLE schema_migrations (id INTEGER PRIMARY KEY, applied_time INTEGER NOT NULL)");
    for (const m of MIGRATIONS.filter((m) => m.id <= 5 || m.id === 7)) {
      old.exec(m.sql);
      old.prepare("INSERT INTO schema_migrations (id, applied_time) VALUES (?, 0)").run(m.id);
    }
    const s = secretRow({ owner: "alice" });
    old.prepare(
      `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time)
       VALUES (?, ?, ?, ?, 'Opaque', '', 'alice', '{}', '{}', 0, 1, ?, '["k"]', 1, 1)`,
    ).run(s.uid, s.tenant, s.mesh, s.name, s.etag);
    old.prepare("INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time) VALUES (?, 1, '[\"k\"]', ?, ?, 1)").run(s.uid, Buffer.from("d"), Buffer.from("p"));
    old.prepare("INSERT INTO create_requests (tenant, request_id, secret_uid, fingerprint, create_time, mac) VALUES (?, 'old-id', ?, 'k1:f', 1, x'ab')").run(s.tenant, s.uid);
    old.close();

    const st = new SqliteStorage(file);
    expect(await st.findCreateRequest(s.tenant, "alice", "old-id")).toEqual({ sub: "alice", requestId: "old-id", secretUid: s.uid, fingerprint: "k1:f", mac: Buffer.from([0xab]) });
    expect(await st.findCreateRequest(s.tenant, "bob", "old-id")).toBeUndefined();
    const db = (st as unknown as { db: Database.Database }).db;
    expect(db.pragma("foreign_key_check")).toEqual([]);
    await st.deleteSecret(s.uid, undefined); // the cascade still reaches the request record
    expect(db.prepare("SELECT count(*) FROM create_requests").pluck().get()).toBe(0);
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when another connection (another process, `keys rotate`) commits after a read, then the next read sees its change, not the cache", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    const scope = { tenant: "t1", mesh: "m1" };
    const s = secretRow();
    await st.insertSecret(s, versionRow(s, 1, "before"));
    expect(Buffer.from((await st.readSecret(scope, "s", 0))!.version!.payload).toString()).toBe("before");
    expect((await st.readSecrets(scope, ["s"]))[0]!.secret.description).toBe("");

    const other = new Database(file);
    other.prepare("UPDATE secret_versions SET payload = ? WHERE uid = ?").run(Buffer.from("after"), s.uid);
    other.prepare("UPDATE secrets SET description = 'elsewhere' WHERE uid = ?").run(s.uid);
    other.close();
    await new Promise((resolve) => setImmediate(resolve)); // reads of one event-loop turn share one check
    expect(Buffer.from((await st.readSecret(scope, "s", 0))!.version!.payload).toString()).toBe("after");
    expect((await st.readSecrets(scope, ["s"]))[0]!.secret.description).toBe("elsewhere");
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when a read is served, then what it returns is frozen, so no caller can change what the next caller reads", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const st = new SqliteStorage(path.join(dir, "db.sqlite"));
    const s = secretRow({ labels: { a: "b" } });
    await st.insertSecret(s, versionRow(s));
    await st.putGrant({ secretUid: s.uid, subject: "user:u", level: 2, keys: ["k"], expireTime: undefined, grantedBy: "o", createTime: 1 });
    const got = (await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))!;
    const writes: Array<() => void> = [
      () => ((got.secret as { name: string }).name = "x"),
      () => ((got.secret.labels as Record<string, string>).a = "x"),
      () => (got.secret.keys as string[]).push("x"),
      () => ((got.version as { version: number }).version = 9),
      () => (got.grants[0]!.keys as string[]).push("x"),
      () => (got.grants as unknown[]).pop(),
    ];
    for (const w of writes) expect(w).toThrow(TypeError);
    expect((await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))!.secret.labels).toEqual({ a: "b" });
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when the read cache is over its byte budget, then the least recently read entries go; an entry over the entry limit, ciphertext or metadata, is never held", () => {
    const cache = new ReadCache({ maxBytes: 35_000, maxEntryBytes: 20_000 });
    const scope = { tenant: "t1", mesh: "m1" };
    const entry = (name: string, payloadBytes: number, annotations: Record<string, string> = {}) => {
      const s = secretRow({ name, annotations });
      return { secret: s, version: { ...versionRow(s), payload: Buffer.alloc(payloadBytes) }, grants: [], latestVersion: 1 };
    };
    for (const n of ["a", "b", "c"]) cache.put(scope, n, 0, entry(n, 10_000)); // ~10.8 KB each
    expect(cache.size).toBe(3);
    cache.get(scope, "a", 0); // a is now the most recently read
    cache.put(scope, "d", 0, entry("d", 10_000));
    expect(cache.get(scope, "b", 0)).toBeUndefined();
    expect(["a", "c", "d"].map((n) => cache.get(scope, n, 0)?.secret.name)).toEqual(["a", "c", "d"]);
    cache.put(scope, "big", 0, entry("big", 50_000));
    expect(cache.get(scope, "big", 0)).toBeUndefined();
    cache.put(scope, "annotated", 0, entry("annotated", 10, { note: "x".repeat(15_000) })); // 30 KB of UTF-16
    expect(cache.get(scope, "annotated", 0)).toBeUndefined();
    expect(cache.get({ tenant: "t2", mesh: "m1" }, "a", 0)).toBeUndefined(); // another tenant's key
    const a = cache.get(scope, "a", 0)!;
    cache.invalidate(a.secret.uid);
    expect(cache.get(scope, "a", 0)).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  it("when another connection commits without a change row (a tool on the file), then subscribers are told to resync", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    const s = secretRow();
    await st.insertSecret(s, versionRow(s));
    const r = recorder();
    const sub = st.changes.subscribe(r.listener);
    const other = new Database(file);
    other.prepare("UPDATE secrets SET description = 'by hand' WHERE uid = ?").run(s.uid);
    other.close();
    await eventually(() => r.events.length > 0);
    expect(r.events[0]).toEqual({ type: "resync", revision: st.changes.revision(), reason: "unattributed" });
    sub.close();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when the audit writer thread and another worker write audit events and leases, then no subscriber is told to resync; a hand edit after them still is", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    const worker = new SqliteStorage(file);
    const writer = st.openAuditWriter();
    try {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const r = recorder();
      const sub = st.changes.subscribe(r.listener);
      const event = { tenant: s.tenant, time: Date.now(), requestId: "rid-thread", method: "GetSecret", sub: "app", mesh: s.mesh, name: s.name, version: 1, keys: ["k"], code: "OK", peer: "", stage: "" };
      const l = { watchId: "w1", tenant: s.tenant, sub: "app", roles: [], revision: "", since: 1, replica: "r2" };
      const housekeeping = [
        () => writer.appendAudit([event, { ...event, requestId: "rid-thread-2" }]),
        () => worker.appendAudit([{ ...event, requestId: "rid-worker" }]),
        () => worker.openReplica("r2", { now: Date.now(), expireTime: Date.now() + 60_000 }),
        () => worker.putLeases(l, [s.uid], Date.now()),
        () => worker.renewLeases("r2", { now: Date.now(), expireTime: Date.now() + 60_000 }, new Map()),
        () => worker.deleteLeases("w1"),
        () => worker.deleteReplicaLeases("r2"),
      ];
      for (const write of housekeeping) {
        await write();
        st.changes.poll(); // each commit on its own, as a poll finds it
      }
      expect(r.events).toEqual([]);
      const listed = await st.listAudit(s.tenant, { after: undefined, limit: 10 });
      expect(listed.map((e) => e.requestId)).toEqual(["rid-thread", "rid-thread-2", "rid-worker"]);

      const other = new Database(file);
      other.prepare("UPDATE secrets SET description = 'by hand' WHERE uid = ?").run(s.uid);
      other.close();
      await eventually(() => r.events.length > 0);
      expect(r.events[0]).toEqual({ type: "resync", revision: st.changes.revision(), reason: "unattributed" });
      sub.close();
    } finally {
      await writer.close();
      await worker.close();
      await st.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("when the audit writer thread cannot write, then the call fails with SQLite's error; once it can, the next call writes", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    const writer = st.openAuditWriter();
    const event = { tenant: "t1", time: Date.now(), requestId: "rid-1", method: "GetSecret", sub: "app", mesh: "m1", name: "s", version: 1, keys: [], code: "OK", peer: "", stage: "" };
    const lock = new Database(file);
    try {
      lock.pragma("busy_timeout = 0");
      lock.exec("BEGIN EXCLUSIVE"); // holds the write lock past the thread's busy timeout
      const busy = new SqliteAuditWriter(file, 50);
      await expect(busy.appendAudit([event])).rejects.toMatchObject({ code: "SQLITE_BUSY" });
      await busy.close();
      lock.exec("ROLLBACK");
      await writer.appendAudit([event]);
      expect((await st.listAudit("t1", { after: undefined, limit: 10 })).map((e) => e.requestId)).toEqual(["rid-1"]);
      await writer.close();
      await expect(writer.appendAudit([event])).rejects.toThrow(/closed/);
    } finally {
      lock.close();
      await st.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("when a subscriber throws, then the write still resolves and the other subscribers still hear it", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const errors: unknown[] = [];
    const st = new SqliteStorage(path.join(dir, "db.sqlite"), { feed: { onError: (e) => errors.push(e) } });
    const bad = st.changes.subscribe(() => {
      throw new Error("subscriber bug");
    });
    const r = recorder();
    const good = st.changes.subscribe(r.listener);
    const s = secretRow();
    expect(await st.insertSecret(s, versionRow(s))).toBe("ok");
    expect(r.changes().map((c) => c.uid)).toEqual([s.uid]);
    expect(errors).toHaveLength(1);
    bad.close();
    good.close();
    await st.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when ListAuditEvents filters by sub or by name, then its query seeks the (tenant, sub|name, time) index (EXPLAIN QUERY PLAN), not the tenant's whole trail", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const file = path.join(dir, "db.sqlite");
    const st = new SqliteStorage(file);
    try {
      await st.appendAudit(Array.from({ length: 50 }, (_, i) => auditRow({ time: i, sub: `sub-${i % 5}`, name: `name-${i % 7}` })));
      const db = new Database(file, { readonly: true });
      const params = { tenant: "t1", lo: 0, hi: Number.MAX_SAFE_INTEGER, after_time: -1, after_id: -1, mesh: null, name: null, sub: null, meshes: null, limit: 10 };
      const plan = (sql: string, over: object): string =>
        db.prepare<[object], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`).all({ ...params, ...over }).map((r) => r.detail).join("; ");
      expect(plan(listAuditSql("sub").sqlite, { sub: "sub-1" })).toMatch(/USING INDEX audit_events_tenant_sub_time \(tenant=\? AND sub=\? AND time>\? AND time<\?\)/);
      expect(plan(listAuditSql("name").sqlite, { name: "name-3" })).toMatch(/USING INDEX audit_events_tenant_name_time \(tenant=\? AND name=\? AND time>\? AND time<\?\)/);
      expect(plan(listAuditSql("sub").sqlite, { sub: "sub-1" })).not.toMatch(/TEMP B-TREE/); // the index gives the (time, id) order too
      db.close();
      expect((await st.listAudit("t1", { after: undefined, limit: 100, sub: "sub-1" })).map((e) => e.time)).toEqual([1, 6, 11, 16, 21, 26, 31, 36, 41, 46]);
      expect((await st.listAudit("t1", { after: undefined, limit: 100, name: "name-3", sub: "sub-0" })).map((e) => e.time)).toEqual([10, 45]);
    } finally {
      await st.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("when the audit writer thread appends and prunes, then it keeps the stored size in step: size-bounded pruning there and here agree", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sq-"));
    const st = new SqliteStorage(path.join(dir, "db.sqlite"));
    const writer = st.openAuditWriter();
    try {
      await writer.appendAudit([auditRow({ time: 1 }), auditRow({ time: 2 }), auditRow({ time: 3 })]);
      await st.appendAudit([auditRow({ time: 4 })]);
      expect(await writer.pruneAudit(2, 10)).toBe(1);
      const one = auditRowBytes(auditRow(), auditKeysJson(["k"])); // every row here has the same size
      expect(await writer.pruneAuditBytes(3 * one, 10)).toBe(0);
      expect(await writer.pruneAuditBytes(2 * one, 10)).toBe(1);
      expect(await st.pruneAuditBytes(one, 10)).toBe(1);
      expect((await st.listAudit("t1", { after: undefined, limit: 10 })).map((e) => e.time)).toEqual([4]);
    } finally {
      await writer.close();
      await st.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
