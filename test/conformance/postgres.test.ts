/**
 * The storage conformance suite against PostgreSQL: a throw-away cluster for this file,
 * a fresh database per case. No PostgreSQL installed is a failure, never a skip.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStorage } from "../../src/storage/postgres/postgres-storage.js";
import type { Storage } from "../../src/storage/storage.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { runStorageConformance, secretRow, versionRow, type StorageFactory } from "./storage-suite.js";
import { runRotationConformance } from "./rotation-suite.js";

let cluster: PostgresCluster;
const urls = new Map<Storage, string>();
beforeAll(async () => {
  cluster = await startPostgres();
}, 60_000);
afterAll(() => cluster?.stop());

const factory: StorageFactory = {
  async open(options) {
    const url = await cluster.createDatabase();
    const feed = options?.feedRetain === undefined ? {} : { feed: { retain: options.feedRetain, pruneEvery: 2 } };
    const st = await PostgresStorage.open(url, feed);
    urls.set(st, url);
    return st;
  },
  async openPeer(st) {
    return PostgresStorage.open(urls.get(st)!);
  },
  async destroy(st: Storage) {
    await st.close();
  },
};
runStorageConformance("postgres", factory);
runRotationConformance("postgres", factory);

describe("postgres specifics", () => {
  it("when several replicas start together on an empty database, then each migration is applied exactly once", async () => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all(Array.from({ length: 6 }, () => PostgresStorage.open(url)));
    const probe = await PostgresStorage.open(url);
    const rows = await (probe as unknown as { pool: { query(q: string): Promise<{ rows: { id: number; n: string }[] }> } }).pool.query(
      "SELECT id, count(*) AS n FROM schema_migrations GROUP BY id",
    );
    expect(rows.rows.length).toBeGreaterThan(0);
    for (const r of rows.rows) expect(Number(r.n)).toBe(1);
    await Promise.all([...stores, probe].map((s) => s.close()));
  });

  it("when 40 creates of one name race over two pools, then exactly one is ok and 39 exist", async () => {
    const url = await cluster.createDatabase();
    const a = await PostgresStorage.open(url, { poolSize: 8 });
    const b = await PostgresStorage.open(url, { poolSize: 8 });
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const s = secretRow({ name: "raced" });
        return (i % 2 === 0 ? a : b).insertSecret(s, versionRow(s));
      }),
    );
    expect(results.filter((r) => r === "ok")).toHaveLength(1);
    expect(results.filter((r) => r === "exists")).toHaveLength(39);
    await a.close();
    await b.close();
  });

  it("when the database is unreachable, then calls fail with UNAVAILABLE, and work again once it is back", async () => {
    const url = await cluster.createDatabase();
    const st = await PostgresStorage.open(url, { poolSize: 2 });
    const s = secretRow({ name: "before" });
    expect(await st.insertSecret(s, versionRow(s))).toBe("ok");
    cluster.kill();
    try {
      await expect(st.readSecret({ tenant: "t1", mesh: "m1" }, "before", 0)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    } finally {
      cluster.start();
    }
    let got;
    for (let i = 0; i < 50 && got === undefined; i++) {
      got = await st.readSecret({ tenant: "t1", mesh: "m1" }, "before", 0).catch(() => undefined);
      if (got === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    expect(got?.secret.uid).toBe(s.uid);
    await st.close();
  });
});
