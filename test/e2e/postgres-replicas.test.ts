/**
 * Two secretd servers (replicas) on one PostgreSQL database, as behind a load balancer:
 * what one writes the other reads, uniqueness holds across them, a lost database turns
 * health NOT_SERVING and calls UNAVAILABLE until it is back, and nothing is in clear in
 * the database (a pg_dump of it is scanned).
 */
import { spawnSync } from "node:child_process";
import { credentials, makeGenericClientConstructor, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

let cluster: PostgresCluster;
let url: string;
let a: TestServer;
let b: TestServer;
let admin: string;

beforeAll(async () => {
  cluster = await startPostgres();
  url = await cluster.createDatabase();
  a = await startTestServer({ databaseUrl: url, databaseStatementTimeout: "2s" });
  // Same KEK and JWT key as replica a (one key source shared by all replicas).
  b = await startTestServer({ databaseUrl: url, databaseStatementTimeout: "2s", dataDir: a.dataDir });
  admin = await a.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
}, 90_000);

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  cluster?.stop();
});

async function healthOf(s: TestServer): Promise<unknown> {
  const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
  const h = new Health(s.address, credentials.createInsecure()) as unknown as {
    Check(req: object, md: Metadata, cb: (e: ServiceError | null, r: { status: unknown }) => void): void;
    close(): void;
  };
  try {
    return await new Promise((resolve, reject) =>
      h.Check({ service: "secrets.v1.SecretService" }, new Metadata(), (e, r) => (e ? reject(e) : resolve(r.status))),
    );
  } finally {
    h.close();
  }
}

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("replicas on one PostgreSQL database", () => {
  it("when a secret is created through one replica, then the other reads it, updates it, and the first sees the update", async () => {
    await a.call("createSecret", { mesh: "default", name: "shared", stringData: { password: "PG-REPLICA-VALUE-1" } }, admin);
    const got = await b.call<Secret>("getSecret", { mesh: "default", name: "shared" }, admin);
    expect(Buffer.from(got.data.password!).toString()).toBe("PG-REPLICA-VALUE-1");
    await b.call("updateSecret", { mesh: "default", name: "shared", etag: got.etag, stringData: { password: "PG-REPLICA-VALUE-2" } }, admin);
    const again = await a.call<Secret>("getSecret", { mesh: "default", name: "shared" }, admin);
    expect(Buffer.from(again.data.password!).toString()).toBe("PG-REPLICA-VALUE-2");
    expect(again.version).toBe(2);
  });

  it("when 40 creates of one name are spread over both replicas, then exactly one is OK and 39 are ALREADY_EXISTS", async () => {
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        codeOf((i % 2 === 0 ? a : b).call("createSecret", { mesh: "default", name: "contended", stringData: { k: `v${i}` } }, admin)).catch(() => status.OK),
      ),
    );
    expect(results.filter((c) => c === status.OK)).toHaveLength(1);
    expect(results.filter((c) => c === status.ALREADY_EXISTS)).toHaveLength(39);
  });

  it("when a watch is open on one replica, then an update through the other reaches it, and a delete through the other is refused until forced", async () => {
    await a.call("createSecret", { mesh: "default", name: "watched", stringData: { k: "w1" } }, admin);
    const w = openWatch(b.client, { mesh: "default", items: [{ name: "watched" }] }, admin);
    try {
      const first = await w.next();
      expect(Buffer.from(first.values[0]!.value).toString()).toBe("w1");
      const cur = await a.call<Secret>("getSecret", { mesh: "default", name: "watched" }, admin);
      const sent = Date.now();
      await a.call("updateSecret", { mesh: "default", name: "watched", etag: cur.etag, stringData: { k: "w2" } }, admin);
      const second = await w.next(5000);
      expect(Buffer.from(second.values[0]!.value).toString()).toBe("w2");
      expect(Date.now() - sent).toBeLessThan(5000);
      // The lease is in the shared database: the other replica sees the consumer.
      const consumers = await a.call<{ consumers: unknown[] }>("listConsumers", { mesh: "default", name: "watched" }, admin);
      expect(consumers.consumers).toHaveLength(1);
      expect(await codeOf(a.call("deleteSecret", { mesh: "default", name: "watched" }, admin))).toBe(status.FAILED_PRECONDITION);
      await a.call("deleteSecret", { mesh: "default", name: "watched", force: true }, admin);
      expect((await w.ended()).code).toBe(status.NOT_FOUND);
    } finally {
      w.cancel();
    }
  });

  it("when the listening connection of a replica is killed (a missed NOTIFY), then its watches still get the change by catch-up", async () => {
    await a.call("createSecret", { mesh: "default", name: "caught-up", stringData: { k: "c1" } }, admin);
    const w = openWatch(b.client, { mesh: "default", items: [{ name: "caught-up" }] }, admin);
    try {
      await w.next();
      const pg = await import("pg");
      const c = new pg.default.Client({ connectionString: url });
      await c.connect();
      await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'secretd-listen'");
      const cur = await a.call<Secret>("getSecret", { mesh: "default", name: "caught-up" }, admin);
      await a.call("updateSecret", { mesh: "default", name: "caught-up", etag: cur.etag, stringData: { k: "c2" } }, admin);
      await c.end();
      const next = await w.next(10_000);
      expect(Buffer.from(next.values[0]!.value).toString()).toBe("c2");
    } finally {
      w.cancel();
    }
  });

  it("when the database is dumped, then no value appears in clear", async () => {
    const marker = "PG-DUMP-MARKER-VALUE-7f3a";
    await a.call("createSecret", { mesh: "default", name: "dumped", stringData: { token: marker } }, admin);
    const dump = spawnSync(`${cluster.bin}/pg_dump`, ["--data-only", url], { encoding: "latin1", maxBuffer: 256 * 1024 * 1024 });
    expect(dump.status, dump.stderr).toBe(0);
    expect(dump.stdout).toContain("dumped");
    expect(dump.stdout).not.toContain(marker);
    expect(dump.stdout).not.toContain(Buffer.from(marker).toString("base64"));
    expect(dump.stdout).not.toContain(Buffer.from(marker).toString("hex"));
    expect(dump.stdout).not.toContain("PG-REPLICA-VALUE");
  });

  it("when the database goes away, then calls answer UNAVAILABLE and health NOT_SERVING, and both recover without a restart", async () => {
    expect(["SERVING", 1]).toContain(await healthOf(a));
    cluster.kill();
    try {
      expect(await codeOf(a.call("getSecret", { mesh: "default", name: "shared" }, admin))).toBe(status.UNAVAILABLE);
      await until(async () => ["NOT_SERVING", 2].includes((await healthOf(a)) as string));
      expect(a.logs.some((l) => l.includes("database unreachable"))).toBe(true);
      // Reconnects are retried every 250 ms through the seconds it took to see NOT_SERVING:
      // each is not a line of its own (once, then at most every 30 s with a count).
      expect(a.logs.filter((l) => l.includes("database connection lost")).length).toBeLessThanOrEqual(1);
    } finally {
      cluster.start();
    }
    await until(async () => ["SERVING", 1].includes((await healthOf(b)) as string) && ["SERVING", 1].includes((await healthOf(a)) as string));
    await until(async () => (await codeOf(b.call("getSecret", { mesh: "default", name: "nope" }, admin)).catch(() => -1)) === status.NOT_FOUND);
    const got = await a.call<Secret>("getSecret", { mesh: "default", name: "shared" }, admin);
    expect(got.version).toBe(2);
    expect(a.logs.some((l) => l.includes("database reachable again"))).toBe(true);
    for (const line of [...a.logs, ...b.logs]) {
      expect(line).not.toContain("PG-REPLICA-VALUE");
      expect(line).not.toContain(admin);
    }
  });
});
