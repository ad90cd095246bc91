/**
 * The storage conformance suite against PostgreSQL: a throw-away cluster for this file,
 * a fresh database per case. No PostgreSQL installed is a failure, never a skip.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStorage } from "../../src/storage/postgres/postgres-storage.js";
import type { Storage } from "../../src/storage/storage.js";
import { TABLES_CHANNEL } from "../../src/storage/postgres/postgres-change-feed.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { auditRow, runStorageConformance, secretRow, versionRow, type StorageFactory } from "./storage-suite.js";
import { runRotationConformance } from "./rotation-suite.js";
import { runScheduleConformance } from "./schedule-suite.js";

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
runScheduleConformance("postgres", factory);

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

  it("when secrets are created, with and without a request id, then each create is one statement of secretd's pool, taken by no replica for an outside write", async () => {
    const url = await cluster.createDatabase();
    const st = await PostgresStorage.open(url, { poolSize: 2 });
    const heard: string[] = [];
    const outside = new pg.Client({ connectionString: url });
    await outside.connect();
    outside.on("notification", (n) => heard.push(n.payload ?? ""));
    await outside.query(`LISTEN ${TABLES_CHANNEL}`);
    // Statements sent by secretd's writers' pool (application_name "secretd"), as text.
    const sent: string[] = [];
    const realQuery = pg.Client.prototype.query;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const first = args[0];
      const text = typeof first === "string" ? first : (first as { text?: unknown } | undefined)?.text;
      const app = (this as unknown as { connectionParameters?: { application_name?: string } }).connectionParameters?.application_name;
      if (app === "secretd" && typeof text === "string") sent.push(text);
      return (realQuery as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof realQuery;
    try {
      const plain = secretRow({ name: "plain" });
      expect(await st.insertSecret(plain, versionRow(plain))).toBe("ok");
      expect(sent).toHaveLength(1);
      const asked = secretRow({ name: "asked" });
      const req = { sub: "owner", requestId: "r1", secretUid: asked.uid, fingerprint: "f" };
      expect(await st.insertSecret(asked, versionRow(asked), req)).toBe("ok");
      expect(sent).toHaveLength(2);
      // Refused twice: seen before writing, and by a racing pair (one commits, the other sees or collides with it).
      const again = secretRow({ name: "asked-again" });
      expect(await st.insertSecret(again, versionRow(again), { ...req, secretUid: again.uid })).toBe("request-exists");
      const racers = [secretRow({ name: "race" }), secretRow({ name: "race-2" })];
      const raced = await Promise.all(racers.map((r) => st.insertSecret(r, versionRow(r), { ...req, requestId: "r2", secretUid: r.uid })));
      expect(raced.sort()).toEqual(["ok", "request-exists"]);
    } finally {
      pg.Client.prototype.query = realQuery;
    }
    // Every row is there, and nothing of the refused ones.
    const names = await outside.query<{ name: string; versions: string; changes: string }>(
      "SELECT s.name, (SELECT count(*) FROM secret_versions v WHERE v.uid = s.uid) AS versions, (SELECT count(*) FROM changes c WHERE c.uid = s.uid) AS changes FROM secrets s ORDER BY s.name",
    );
    expect(names.rows.map((r) => [r.name, Number(r.versions), Number(r.changes)]).filter(([n]) => n !== "race" && n !== "race-2")).toEqual([
      ["asked", 1, 1],
      ["plain", 1, 1],
    ]);
    expect(names.rows.filter((r) => r.name.startsWith("race"))).toHaveLength(1);
    // An outside write notifies; notifications come in commit order, so when it is heard, a
    // notification from secretd's creates would have been heard before it.
    await outside.query("UPDATE secrets SET description = 'edited' WHERE name = 'plain'");
    for (let i = 0; i < 200 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(heard).toEqual(["secrets"]);
    await outside.end();
    await st.close();
  });

  it("when 64 creates arrive together, then they commit in batches (fewer transactions than creates), each caller answered with its own outcome, each change in the feed once", async () => {
    const url = await cluster.createDatabase();
    const st = await PostgresStorage.open(url, { poolSize: 4 });
    const heard: string[] = [];
    st.changes.subscribe((ev) => {
      if (ev.type === "changes") for (const c of ev.changes) heard.push(c.name);
    });
    // Two of the 64 ask for one name: one of them is ok, the other finds it taken.
    const rows = Array.from({ length: 64 }, (_, i) => secretRow({ name: i === 63 ? "n-0" : `n-${i}` }));
    const results = await Promise.all(rows.map((r) => st.insertSecret(r, versionRow(r))));
    expect(results.filter((r) => r === "ok")).toHaveLength(63);
    expect(results.filter((r) => r === "exists")).toHaveLength(1);
    // Every ok create is stored with its version, and published before its caller was answered.
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    const stored = await probe.query<{ uid: string }>("SELECT s.uid FROM secrets s JOIN secret_versions v ON v.uid = s.uid");
    const okUids = rows.filter((_, i) => results[i] === "ok").map((r) => r.uid);
    expect(new Set(stored.rows.map((r) => r.uid))).toEqual(new Set(okUids));
    expect(heard.sort()).toEqual(Array.from({ length: 63 }, (_, i) => `n-${i}`).sort());
    const tx = await probe.query<{ n: string; changes: string }>("SELECT count(DISTINCT xid) AS n, count(*) AS changes FROM changes");
    expect(Number(tx.rows[0]!.changes)).toBe(63);
    expect(Number(tx.rows[0]!.n)).toBeLessThan(63);
    await probe.end();
    await st.close();
  });

  it("when replicas write in turn, then each hears the other's changes by notification, with no catch-up poll", async () => {
    const url = await cluster.createDatabase();
    // An hour between polls: only the NOTIFY (carried by the writer's feed read) can wake the peer within the test.
    const feed = { pollMs: 3_600_000 };
    const a = await PostgresStorage.open(url, { feed });
    const b = await PostgresStorage.open(url, { feed });
    const heard = (st: PostgresStorage, name: string) =>
      new Promise<void>((resolve) => {
        const sub = st.changes.subscribe((ev) => {
          if (ev.type === "changes" && ev.changes.some((c) => c.name === name)) {
            sub.close();
            resolve();
          }
        });
      });
    for (let i = 0; i < 3; i++) {
      const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
      const s = secretRow({ name: `turn-${i}` });
      const got = heard(reader, s.name);
      expect(await writer.insertSecret(s, versionRow(s))).toBe("ok");
      await got;
    }
    await a.close();
    await b.close();
  }, 20_000);

  it("when a batch of creates holds every kind of field value, then each reads back byte for byte (the batch's binary arrays)", async () => {
    const url = await cluster.createDatabase();
    const st = await PostgresStorage.open(url, { poolSize: 2 });
    // Characters a text array literal must quote or escape, non-ASCII, empty strings; every
    // byte value, empty bytes; MACs present and absent; a far expiry and none; large integers.
    const awkward = ['a,b', '{c}', '"q"', "back\\slash", "NULL", " sp ", "é∑😀", ""];
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const rows = Array.from({ length: 48 }, (_, i) => {
      const word = awkward[i % awkward.length]!;
      const s = secretRow({
        name: `n-${i}`,
        description: word,
        owner: word === "" ? "o" : word,
        labels: { [`k${word}`]: word },
        annotations: { a: `${word}\n${word}` },
        immutable: i % 2 === 0,
        version: 1,
        keys: [word === "" ? "k" : word, "z"],
        expireTime: i % 3 === 0 ? undefined : 2 ** 52 + i,
        ...(i % 4 === 0 ? {} : { mac: all.subarray(i % 7), grantsMac: i % 8 === 1 ? undefined : Buffer.from([i, 0, 255]) }),
      });
      const v = { ...versionRow(s), payload: i % 5 === 0 ? Buffer.alloc(0) : Buffer.concat([all, Buffer.alloc(1024, i)]), dek: all.subarray(0, 60), ...(i % 4 === 0 ? {} : { mac: all.subarray(255 - i) }) };
      return { s, v };
    });
    const results = await Promise.all(rows.map(({ s, v }) => st.insertSecret(s, v)));
    expect(results).toEqual(rows.map(() => "ok"));
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    // Fewer transactions than creates: they went in batches, not one statement each.
    const tx = await probe.query<{ n: string }>("SELECT count(DISTINCT xid) AS n FROM changes");
    expect(Number(tx.rows[0]!.n)).toBeLessThan(rows.length);
    await probe.end();
    for (const { s, v } of rows) {
      const got = await st.readSecret({ tenant: s.tenant, mesh: s.mesh }, s.name, 0, true);
      expect(got?.secret).toEqual(s);
      expect(Buffer.from(got!.version!.payload).equals(v.payload)).toBe(true);
      expect(Buffer.from(got!.version!.dek).equals(v.dek)).toBe(true);
      expect(got!.version!.mac === undefined ? undefined : Buffer.from(got!.version!.mac).toString("hex")).toBe(v.mac === undefined ? undefined : Buffer.from(v.mac).toString("hex"));
      expect(got!.version!.keys).toEqual(s.keys);
    }
    // The audit append's arrays too.
    const events = awkward.map((w, i) => auditRow({ time: 2 ** 52 + i, requestId: `r-${i}`, method: w, sub: w, name: w, keys: [w, "z"], version: i, peer: w, code: "OK" }));
    await st.appendAudit(events);
    const listed = await st.listAudit("t1", { after: undefined, limit: 100 });
    expect(listed.map(({ id: _id, ...rest }) => rest)).toEqual(events);
    await st.close();
  });

  it("when 64 creates with request ids arrive together, then they commit in batches, and a repeated request id answers the first create's record", async () => {
    const url = await cluster.createDatabase();
    const st = await PostgresStorage.open(url, { poolSize: 4 });
    const req = (r: { uid: string }, i: number) => ({ sub: "owner", requestId: `req-${i}`, secretUid: r.uid, fingerprint: `f-${i}`, mac: Buffer.from(`m-${i}`) });
    // The last of the 64 asks for the first one's name with a request id of its own.
    const rows = Array.from({ length: 64 }, (_, i) => secretRow({ name: i === 63 ? "n-0" : `n-${i}` }));
    const results = await Promise.all(rows.map((r, i) => st.insertSecret(r, versionRow(r), req(r, i))));
    expect(results.filter((r) => r === "ok")).toHaveLength(63);
    const taken = results.indexOf("exists");
    expect(taken === 0 || taken === 63).toBe(true);
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    const tx = await probe.query<{ n: string; changes: string }>("SELECT count(DISTINCT xid) AS n, count(*) AS changes FROM changes");
    expect(Number(tx.rows[0]!.changes)).toBe(63);
    expect(Number(tx.rows[0]!.n)).toBeLessThan(63);
    // Each ok create recorded its request (with its MAC); the refused one recorded nothing.
    for (let i = 0; i < 64; i++) {
      const found = await st.findCreateRequest("t1", "owner", `req-${i}`);
      if (i === taken) expect(found).toBeUndefined();
      else expect([found?.secretUid, found?.fingerprint, Buffer.from(found!.mac!).toString()]).toEqual([rows[i]!.uid, `f-${i}`, `m-${i}`]);
    }
    // Retried together, with new uids: every recorded id is refused and still names the
    // first secret; the id whose create found its name taken runs again.
    const again = rows.map((_, i) => secretRow({ name: `again-${i}` }));
    const retried = await Promise.all(again.map((r, i) => st.insertSecret(r, versionRow(r), req(r, i))));
    expect(retried.map((r, i) => (i === taken ? r === "ok" : r === "request-exists"))).toEqual(rows.map(() => true));
    for (let i = 0; i < 64; i++) if (i !== taken) expect((await st.findCreateRequest("t1", "owner", `req-${i}`))?.secretUid).toBe(rows[i]!.uid);
    // Two creates with one request id in one burst (one batch, or two racing ones): one is
    // ok, the other request-exists, and the other six of the burst are written as asked.
    const burst = Array.from({ length: 8 }, (_, i) => secretRow({ name: `burst-${i}` }));
    const burstResults = await Promise.all(burst.map((r, i) => st.insertSecret(r, versionRow(r), { ...req(r, 100 + i), requestId: i < 2 ? "dup" : `burst-${i}` })));
    expect(burstResults.slice(0, 2).sort()).toEqual(["ok", "request-exists"]);
    expect(burstResults.slice(2)).toEqual(Array(6).fill("ok"));
    const dup = burst[burstResults.indexOf("ok")]!;
    expect((await st.findCreateRequest("t1", "owner", "dup"))?.secretUid).toBe(dup.uid);
    const burstStored = await probe.query<{ name: string }>("SELECT name FROM secrets WHERE name LIKE 'burst-%' ORDER BY name");
    expect(burstStored.rows.map((r) => r.name)).toEqual([dup.name, ...burst.slice(2).map((r) => r.name)].sort());
    await probe.end();
    await st.close();
  });

  it("when two replicas create the same 32 names at once in opposite orders, then every name has one ok and one exists, and no batch fails", async () => {
    const url = await cluster.createDatabase();
    const a = await PostgresStorage.open(url, { poolSize: 4 });
    const b = await PostgresStorage.open(url, { poolSize: 4 });
    // Both replicas' batches take each other's names (ON CONFLICT waits for the other's
    // commit). The batch's sorted insert order rules out a deadlock between them; this
    // does not make one happen without it (the batches rarely overlap mid-insert), it
    // checks the outcomes across replicas.
    for (let round = 0; round < 3; round++) {
      const names = Array.from({ length: 32 }, (_, i) => `r${round}-${String(i).padStart(2, "0")}`);
      const onA = names.map((name) => secretRow({ name }));
      const onB = [...names].reverse().map((name) => secretRow({ name }));
      const results = await Promise.all([...onA.map((r) => a.insertSecret(r, versionRow(r))), ...onB.map((r) => b.insertSecret(r, versionRow(r)))]);
      const byName = new Map<string, string[]>();
      [...onA, ...onB].forEach((r, i) => byName.set(r.name, [...(byName.get(r.name) ?? []), results[i]!]));
      for (const n of names) expect(byName.get(n)!.sort()).toEqual(["exists", "ok"]);
    }
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
