/**
 * Issue #29 item 2: cache hits without SQL on PostgreSQL. Two replicas on one database;
 * every statement the replicas send is counted (pg.Client.prototype.query, wrapped for
 * this file: both servers run in this process). A repeated GetSecret or ProjectSecrets of
 * an unchanged secret reads no secret row; a write through the other replica (an update,
 * a grant, a revoke, a delete) makes the next read fresh as soon as the feed has
 * delivered it (waited on as a condition: the replica's feed revision), and so does a
 * plain SQL edit made outside secretd.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { FeedEvent } from "../../src/storage/change-feed.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const M = "cache";
/** A statement that reads secret rows (GetSecret's and ProjectSecrets' one statement, grant and listing reads). */
const READS_SECRETS = /\bFROM\s+secrets\b/i;

const statements: string[] = [];
const realQuery = pg.Client.prototype.query;

let cluster: PostgresCluster;
let url: string;
let a: TestServer;
let b: TestServer;
let alice: string;
let bob: string;

beforeAll(async () => {
  // Every statement of every pg client in this process, as the text it sends.
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === "string" ? first : (first as { text?: unknown } | undefined)?.text;
    if (typeof text === "string") statements.push(text);
    return (realQuery as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof realQuery;
  cluster = await startPostgres();
  url = await cluster.createDatabase();
  a = await startTestServer({ databaseUrl: url });
  b = await startTestServer({ databaseUrl: url, dataDir: a.dataDir }); // same KEK and JWT key
  alice = await a.token({ tenant: "acme", sub: "alice", roles: ["data-developer"] });
  bob = await a.token({ tenant: "acme", sub: "bob", roles: [] });
}, 90_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  cluster?.stop();
  pg.Client.prototype.query = realQuery;
});

/** Secret-row reads made while `fn` runs (the other replica is idle meanwhile). */
async function readsDuring(fn: () => Promise<unknown>): Promise<number> {
  const from = statements.length;
  await fn();
  return statements.slice(from).filter((s) => READS_SECRETS.test(s)).length;
}

/** Resolves once replica `s` has heard of every change up to `revision` (no sleep: polled on the feed). */
async function heard(s: TestServer, revision: number): Promise<void> {
  const end = Date.now() + 15_000;
  while (s.app.storage.changes.revision() < revision) {
    if (Date.now() > end) throw new Error(`replica never heard of revision ${revision}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** Revision replica `s` stands at right after one of its own writes (published before the answer). */
const revisionOf = (s: TestServer): number => s.app.storage.changes.revision();

const valueOf = (x: Secret): string => Buffer.from(x.data.v ?? new Uint8Array()).toString();

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return status.OK;
  } catch (e) {
    return (e as ServiceError).code;
  }
}

describe("the read cache of a PostgreSQL replica", () => {
  it("when an unchanged secret is read again by GetSecret and ProjectSecrets, then the replica reads no secret row from PostgreSQL", async () => {
    await a.call("createSecret", { mesh: M, name: "hot", stringData: { v: "hot-v1" } }, alice);
    const gets: number[] = [];
    for (let i = 0; i < 4; i++) gets.push(await readsDuring(async () => expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "hot" }, alice))).toBe("hot-v1")));
    const projections: number[] = [];
    const project = { mesh: M, items: [{ name: "hot", envPrefix: "HOT_" }] };
    for (let i = 0; i < 4; i++) projections.push(await readsDuring(async () => expect((await a.call<Projection>("projectSecrets", project, alice)).values).toHaveLength(1)));
    // A version read by number, and another caller, are cached rows too.
    const other: number[] = [];
    for (let i = 0; i < 3; i++) other.push(await readsDuring(() => a.call<Secret>("getSecret", { mesh: M, name: "hot", version: 1 }, alice)));
    console.log(`secret-row reads per call on PostgreSQL: GetSecret ${JSON.stringify(gets)}, ProjectSecrets ${JSON.stringify(projections)}, GetSecret v1 ${JSON.stringify(other)}`);
    expect(gets).toEqual([1, 0, 0, 0]);
    expect(projections.slice(1)).toEqual([0, 0, 0]);
    expect(other.slice(1)).toEqual([0, 0]);
  });

  it("when the secret is updated, granted, revoked and deleted through the other replica, then this replica's next read after the feed delivered it is fresh", async () => {
    const created = await a.call<Secret>("createSecret", { mesh: M, name: "shared", stringData: { v: "shared-v1" } }, alice);
    for (let i = 0; i < 2; i++) expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "shared" }, alice))).toBe("shared-v1");
    expect(await codeOf(a.call("getSecret", { mesh: M, name: "shared" }, bob))).toBe(status.NOT_FOUND);
    expect(await readsDuring(() => a.call("getSecret", { mesh: M, name: "shared" }, alice))).toBe(0);

    await b.call("updateSecret", { mesh: M, name: "shared", etag: created.etag, stringData: { v: "shared-v2" } }, alice);
    await heard(a, revisionOf(b));
    expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "shared" }, alice))).toBe("shared-v2");
    expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "shared" }, alice))).toBe("shared-v2");

    await b.call("grantAccess", { mesh: M, name: "shared", subject: "user:bob", permission: Permission.PERMISSION_READ }, alice);
    await heard(a, revisionOf(b));
    expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "shared" }, bob))).toBe("shared-v2");
    expect(await readsDuring(() => a.call("getSecret", { mesh: M, name: "shared" }, bob))).toBe(0); // bob's answer is cached now

    await b.call("revokeAccess", { mesh: M, name: "shared", subject: "user:bob" }, alice);
    await heard(a, revisionOf(b));
    expect(await codeOf(a.call("getSecret", { mesh: M, name: "shared" }, bob))).toBe(status.NOT_FOUND);
    expect(await codeOf(a.call("projectSecrets", { mesh: M, items: [{ name: "shared" }] }, bob))).toBe(status.NOT_FOUND);

    await b.call("deleteSecret", { mesh: M, name: "shared" }, alice);
    await heard(a, revisionOf(b));
    expect(await codeOf(a.call("getSecret", { mesh: M, name: "shared" }, alice))).toBe(status.NOT_FOUND);
  });

  it("when a change through the other replica makes many readers here re-read one secret at once (its watches), then they share one SELECT", async () => {
    const created = await a.call<Secret>("createSecret", { mesh: M, name: "watched", stringData: { v: "watched-v1" } }, alice);
    expect(valueOf(await b.call<Secret>("getSecret", { mesh: M, name: "watched" }, alice))).toBe("watched-v1");
    await a.call("updateSecret", { mesh: M, name: "watched", etag: created.etag, stringData: { v: "watched-v2" } }, alice);
    await heard(b, revisionOf(a));
    // 20 reads started together (as a change re-evaluates every watch of the secret): the
    // first misses the cache and reads; the others join that read instead of sending their own.
    const scope = { tenant: "acme", mesh: M };
    let rows: Awaited<ReturnType<TestServer["app"]["storage"]["readSecret"]>>[] = [];
    const reads = await readsDuring(async () => (rows = await Promise.all(Array.from({ length: 20 }, () => b.app.storage.readSecret(scope, "watched", 0)))));
    expect(reads).toBe(1);
    expect(rows.map((r) => r?.secret.etag)).toEqual(Array(20).fill(rows[0]!.secret.etag));
    expect(rows[0]!.secret.etag).not.toBe(created.etag);
    expect(valueOf(await b.call<Secret>("getSecret", { mesh: M, name: "watched" }, alice))).toBe("watched-v2");
  });

  it("when access comes through a role, then a token without the role is not answered from the cache, and revoking the role's grant through the other replica ends it", async () => {
    await a.call("createSecret", { mesh: M, name: "by-role", stringData: { v: "by-role-v1" } }, alice);
    await b.call("grantAccess", { mesh: M, name: "by-role", subject: "role:readers", permission: Permission.PERMISSION_READ }, alice);
    await heard(a, revisionOf(b));
    const reader = await a.token({ tenant: "acme", sub: "carol", roles: ["readers"] });
    const plain = await a.token({ tenant: "acme", sub: "carol", roles: [] });
    for (let i = 0; i < 2; i++) expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "by-role" }, reader))).toBe("by-role-v1");
    expect(await codeOf(a.call("getSecret", { mesh: M, name: "by-role" }, plain))).toBe(status.NOT_FOUND);
    await b.call("revokeAccess", { mesh: M, name: "by-role", subject: "role:readers" }, alice);
    await heard(a, revisionOf(b));
    expect(await codeOf(a.call("getSecret", { mesh: M, name: "by-role" }, reader))).toBe(status.NOT_FOUND);
  });

  it("when a row is edited by plain SQL outside secretd, then the replica drops what it cached and the next read checks the row (DATA_LOSS)", async () => {
    await a.call("createSecret", { mesh: M, name: "edited", stringData: { v: "edited-v1" } }, alice);
    for (let i = 0; i < 2; i++) expect(valueOf(await a.call<Secret>("getSecret", { mesh: M, name: "edited" }, alice))).toBe("edited-v1");
    let resynced = false;
    const sub = a.app.storage.changes.subscribe((ev: FeedEvent) => {
      if (ev.type === "resync") resynced = true;
    });
    const sql = new pg.Client({ connectionString: url });
    await sql.connect();
    try {
      await sql.query("UPDATE secrets SET description = 'edited by hand' WHERE tenant = 'acme' AND mesh = $1 AND name = 'edited'", [M]);
      const end = Date.now() + 15_000;
      while (!resynced) {
        if (Date.now() > end) throw new Error("no resync after a plain SQL edit");
        await new Promise((r) => setImmediate(r));
      }
      expect(await codeOf(a.call("getSecret", { mesh: M, name: "edited" }, alice))).toBe(status.DATA_LOSS);
    } finally {
      sub.close();
      await sql.end();
    }
  });
});
