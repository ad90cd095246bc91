/**
 * The PostgreSQL change feed without a global lock (#29 item 1): writers on two replicas
 * commit in parallel, and every feed reader on every replica still sees every change
 * exactly once, in one order, without a gap — while a replica's LISTEN connection is
 * killed and while PostgreSQL restarts under the write load.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change, FeedEvent } from "../../src/storage/change-feed.js";
import { PostgresStorage } from "../../src/storage/postgres/postgres-storage.js";
import { secretRow, versionRow } from "../conformance/storage-suite.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";

let cluster: PostgresCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(() => cluster?.stop());

async function eventually(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function reader(st: PostgresStorage): { events: FeedEvent[]; changes: () => Change[] } {
  const events: FeedEvent[] = [];
  st.changes.subscribe((e) => events.push(e));
  return { events, changes: () => events.flatMap((e) => (e.type === "changes" ? e.changes : [])) };
}

async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

describe("the PostgreSQL change feed under concurrent writers", () => {
  it("when a writing transaction is still open, then another replica's write commits meanwhile, and its change is published only after the older one, in the same order on both", async () => {
    const url = await cluster.createDatabase();
    const a = await PostgresStorage.open(url);
    const b = await PostgresStorage.open(url);
    const ra = reader(a);
    const rb = reader(b);
    const open = new pg.Client({ connectionString: url });
    await open.connect();
    try {
      // An older transaction that has recorded a change and not committed yet.
      await open.query("BEGIN");
      await a.changes.record(open, [{ kind: "secret-created", tenant: "t1", mesh: "m1", name: "older", uid: "older-uid" }]);
      const s = secretRow({ name: "newer" });
      const write = b.insertSecret(s, versionRow(s));
      // The newer write commits although the older transaction is open (no shared lock)…
      const end = Date.now() + 10_000;
      while ((await sql(url, `SELECT 1 FROM secrets WHERE uid = '${s.uid}'`)).rowCount === 0) {
        if (Date.now() > end) throw new Error("the write did not commit while another transaction was open");
        await new Promise((r) => setTimeout(r, 20));
      }
      // …but nobody hears of it before the older transaction ends.
      expect(ra.changes()).toEqual([]);
      expect(rb.changes()).toEqual([]);
      await open.query("COMMIT");
      expect(await write).toBe("ok");
      await eventually(() => ra.changes().length === 2 && rb.changes().length === 2);
      expect(ra.changes().map((c) => c.uid)).toEqual(["older-uid", s.uid]);
      expect(rb.changes()).toEqual(ra.changes());
    } finally {
      await open.end();
      await a.close();
      await b.close();
    }
  }, 60_000);

  it("when 8 writers on two replicas write while a LISTEN connection is killed and PostgreSQL restarts, then every reader sees every acknowledged change once, in one order, without a gap", async () => {
    const url = await cluster.createDatabase();
    const opts = { statementTimeoutMs: 3000, feed: { pollMs: 200 } };
    const a = await PostgresStorage.open(url, opts);
    const b = await PostgresStorage.open(url, opts);
    // Two readers per replica.
    const readers = [reader(a), reader(a), reader(b), reader(b)];
    const acked: string[] = [];
    let stop = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      const st = w % 2 === 0 ? a : b;
      for (let i = 0; !stop; i++) {
        const s = secretRow({ name: `w${w}-${i}` });
        try {
          if ((await st.insertSecret(s, versionRow(s))) === "ok") acked.push(s.uid);
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });
    try {
      await eventually(() => acked.length >= 100);
      await sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'secretd-listen'");
      const n = acked.length;
      await eventually(() => acked.length >= n + 100);
      cluster.restart();
      const m = acked.length;
      await eventually(() => acked.length >= m + 100);
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    for (const r of readers) await eventually(() => new Set(r.changes().map((c) => c.uid)).size >= acked.length && acked.every((u) => r.changes().some((c) => c.uid === u)));
    // Writes that failed may still have committed: settle until every reader has the same count.
    await eventually(() => readers.every((r) => r.changes().length === readers[0]!.changes().length));
    const first = readers[0]!.changes();
    for (const r of readers) {
      expect(r.events.filter((e) => e.type === "resync")).toEqual([]);
      const got = r.changes();
      expect(new Set(got.map((c) => c.uid)).size).toBe(got.length);
      got.forEach((c, i) => expect(c.revision).toBe(got[0]!.revision + i));
      expect(got).toEqual(first);
    }
    const seen = new Set(first.map((c) => c.uid));
    expect(acked.filter((u) => !seen.has(u))).toEqual([]);
    expect(acked.length).toBeGreaterThanOrEqual(300);
    await a.close();
    await b.close();
  }, 180_000);
});
