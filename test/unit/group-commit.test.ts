/**
 * The group commit with a second connection on the same file (what another `--workers`
 * process is): waiting for that connection's write lock must not block this event loop.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { GroupCommit } from "../../src/storage/sqlite/group-commit.js";

const dirs: string[] = [];
const dbs: Database.Database[] = [];

function open(file: string): Database.Database {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  dbs.push(db);
  return db;
}

function twoConnections(): { mine: Database.Database; other: Database.Database } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-gc-"));
  dirs.push(dir);
  const file = path.join(dir, "t.db");
  const mine = open(file);
  mine.exec("CREATE TABLE t (n INTEGER NOT NULL UNIQUE)");
  return { mine, other: open(file) };
}

afterEach(() => {
  for (const db of dbs.splice(0)) if (db.open) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("GroupCommit with another connection holding the write lock", () => {
  it("keeps the event loop running while it waits, then commits everything queued meanwhile in one batch", async () => {
    const { mine, other } = twoConnections();
    let commits = 0;
    const gc = new GroupCommit(mine, () => commits++);
    other.exec("BEGIN IMMEDIATE");
    other.exec("INSERT INTO t (n) VALUES (0)");
    const first = gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (1)").run().changes);
    // With a blocking wait, SQLite's busy handler would sleep this thread for the whole
    // busy_timeout and these timers (which release the lock) could never run.
    let settled = false;
    void first.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(false);
    expect(gc.lockWaits).toBe(1);
    const second = gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (2)").run().changes);
    other.exec("COMMIT");
    await expect(Promise.all([first, second])).resolves.toEqual([1, 1]);
    expect(commits).toBe(1); // both writes in one transaction
    expect(other.prepare("SELECT n FROM t ORDER BY n").pluck().all()).toEqual([0, 1, 2]);
    // The connection's busy_timeout is back for its other statements.
    expect(mine.pragma("busy_timeout", { simple: true })).toBe(5000);
  });

  it("a failing write rolls back alone while the lock was contended", async () => {
    const { mine, other } = twoConnections();
    const gc = new GroupCommit(mine);
    other.exec("BEGIN IMMEDIATE");
    const ok = gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (1)").run().changes);
    const dup = gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (1)").run().changes);
    await new Promise((r) => setTimeout(r, 10));
    other.exec("ROLLBACK");
    await expect(ok).resolves.toBe(1);
    await expect(dup).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_UNIQUE" });
    expect(mine.inTransaction).toBe(false);
    expect(mine.prepare("SELECT count(*) FROM t").pluck().get()).toBe(1);
  });

  it("a lock never released ends in SQLITE_BUSY, not a hang, and nothing lands", async () => {
    const { mine, other } = twoConnections();
    const gc = new GroupCommit(mine, () => undefined, { maxWaitMs: 50, busyTimeoutMs: 20 });
    other.exec("BEGIN IMMEDIATE");
    await expect(gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (1)").run())).rejects.toMatchObject({ code: "SQLITE_BUSY" });
    other.exec("ROLLBACK");
    expect(mine.inTransaction).toBe(false);
    // The next write works once the lock is free.
    await expect(gc.submit(() => mine.prepare("INSERT INTO t (n) VALUES (2)").run().changes)).resolves.toBe(1);
  });
});

describe("GroupCommit slices a burst of writes", () => {
  /** Holds the thread for at least `ms` (a write that costs that much CPU). */
  const spin = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };

  it("stops taking writes after maxBatchMs, lets other callbacks run between batches, and commits every write once", async () => {
    const { mine } = twoConnections();
    let commits = 0;
    const gc = new GroupCommit(mine, () => commits++, { maxBatchMs: 8 });
    const insert = mine.prepare("INSERT INTO t (n) VALUES (?)");
    const order: string[] = [];
    // 40 writes of >= 2 ms each, all submitted in one turn: one batch would hold the loop >= 80 ms.
    const writes = Array.from({ length: 40 }, (_, n) =>
      gc.submit(() => {
        spin(2);
        return insert.run(n).changes;
      }).then((changes) => (order.push(`w${n}`), changes)),
    );
    // Another caller's turn, queued just after the burst: it must run before the burst ends.
    const other = new Promise<void>((r) => setImmediate(() => (order.push("other"), r())));
    await expect(Promise.all(writes)).resolves.toEqual(Array(40).fill(1));
    await other;
    // Each batch runs at most ceil(8 / 2) + 1 writes, so at least 8 COMMITs; never one per write either.
    expect(commits).toBeGreaterThanOrEqual(8);
    expect(commits).toBeLessThan(40);
    expect(order.indexOf("other")).toBeLessThan(order.indexOf("w39"));
    expect(mine.prepare("SELECT count(*) FROM t").pluck().get()).toBe(40);
  });

  it("a single write longer than maxBatchMs still commits whole, and the write queued behind it goes to the next batch", async () => {
    const { mine } = twoConnections();
    let commits = 0;
    const gc = new GroupCommit(mine, () => commits++, { maxBatchMs: 1 });
    const insert = mine.prepare("INSERT INTO t (n) VALUES (?)");
    const [a, b] = await Promise.all([
      gc.submit(() => (spin(3), insert.run(1).changes + insert.run(2).changes)),
      gc.submit(() => insert.run(3).changes),
    ]);
    expect([a, b]).toEqual([2, 1]);
    expect(commits).toBe(2);
  });
});
