/**
 * WatchProjection through the real server and the generated client (SPEC §4): the first
 * message, one message per revision change and none otherwise, grants granted, revoked
 * and expired, optional items coming and going, known_revision, token expiry, the
 * per-tenant limit, shutdown, coalescing for a slow reader, and the log line.
 */
import { rmSync } from "node:fs";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch, type WatchRequest } from "../helpers/watch.js";

const MESH = "m";
let s: TestServer;
let owner: string;
let reader: string;
let seq = 0;

function values(p: Projection): Record<string, string> {
  return Object.fromEntries(p.values.map((v) => [v.env, Buffer.from(v.value).toString()]));
}

async function create(name: string, data: Record<string, string>): Promise<Secret> {
  return s.call<Secret>("createSecret", { mesh: MESH, name, stringData: data }, owner);
}

async function update(name: string, data: Record<string, string>): Promise<Secret> {
  const cur = await s.call<Secret>("getSecret", { mesh: MESH, name }, owner);
  return s.call<Secret>("updateSecret", { mesh: MESH, name, etag: cur.etag, stringData: data, updateMask: ["data"] }, owner);
}

function fresh(prefix: string): string {
  return `${prefix}-${++seq}`;
}

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  reader = await s.token({ tenant: "acme", sub: "rose", roles: [] });
});

afterAll(async () => {
  await s.stop();
});

describe("WatchProjection", () => {
  it("when watched, then the first message is the current projection, and each update of a source sends its new values", async () => {
    const name = fresh("db");
    await create(name, { password: "one" });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const first = await w.next();
    expect(values(first)).toEqual({ PASSWORD: "one" });
    const direct = await s.call<Projection>("projectSecrets", { mesh: MESH, items: [{ name }] }, owner);
    expect(first.revision).toBe(direct.revision);
    await update(name, { password: "two" });
    const second = await w.next();
    expect(values(second)).toEqual({ PASSWORD: "two" });
    expect(second.sources[0]!.version).toBe(2);
    w.cancel();
  });

  it("when a write touches another secret or leaves the projection unchanged, then nothing is sent until a real change", async () => {
    const name = fresh("api");
    const other = fresh("other");
    await create(name, { token: "t1" });
    await create(other, { x: "1" });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    await w.next();
    await update(other, { x: "2" });
    // A grant to someone else changes nothing the owner's projection holds.
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:someone", permission: Permission.PERMISSION_READ }, owner);
    await s.call("revokeAccess", { mesh: MESH, name, subject: "user:someone" }, owner);
    await update(name, { token: "t2" });
    const next = await w.next();
    expect(values(next)).toEqual({ TOKEN: "t2" });
    expect(w.received).toHaveLength(2);
    w.cancel();
  });

  it("when known_revision equals the current projection, then the first message is skipped; a later change still comes", async () => {
    const name = fresh("known");
    await create(name, { k: "v1" });
    const cur = await s.call<Projection>("projectSecrets", { mesh: MESH, items: [{ name }] }, owner);
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }], knownRevision: cur.revision }, owner);
    await update(name, { k: "v2" });
    const first = await w.next();
    expect(values(first)).toEqual({ K: "v2" });
    expect(w.received).toHaveLength(1);
    w.cancel();
    const stale = openWatch(s.client, { mesh: MESH, items: [{ name }], knownRevision: cur.revision }, owner);
    expect(values(await stale.next())).toEqual({ K: "v2" });
    stale.cancel();
  });

  it("when an optional source is created, then it appears; deleted, it drops out; re-created, it comes back", async () => {
    const base = fresh("base");
    const opt = fresh("opt");
    await create(base, { a: "1" });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name: base }, { name: opt, optional: true }] }, owner);
    expect(values(await w.next())).toEqual({ A: "1" });
    const made = await create(opt, { b: "2" });
    expect(values(await w.next())).toEqual({ A: "1", B: "2" });
    await s.call("deleteSecret", { mesh: MESH, name: opt, etag: made.etag, force: true }, owner); // watched: force
    expect(values(await w.next())).toEqual({ A: "1" });
    await create(opt, { b: "3" });
    expect(values(await w.next())).toEqual({ A: "1", B: "3" });
    w.cancel();
  });

  it("when a grant is put, the grantee's optional item appears; when revoked, a non-optional watch ends with NOT_FOUND", async () => {
    const name = fresh("shared");
    const base = fresh("mine");
    await create(name, { v: "shared" });
    const rosesOwn = await s.token({ tenant: "acme", sub: "rose", roles: ["data-developer"] });
    await s.call("createSecret", { mesh: MESH, name: base, stringData: { own: "x" } }, rosesOwn);
    const w = openWatch(s.client, { mesh: MESH, items: [{ name: base }, { name, optional: true }] }, rosesOwn);
    expect(values(await w.next())).toEqual({ OWN: "x" });
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:rose", permission: Permission.PERMISSION_PROJECT }, owner);
    expect(values(await w.next())).toEqual({ OWN: "x", V: "shared" });

    const strict = openWatch(s.client, { mesh: MESH, items: [{ name }] }, reader);
    expect(values(await strict.next())).toEqual({ V: "shared" });
    await s.call("revokeAccess", { mesh: MESH, name, subject: "user:rose" }, owner);
    expect(values(await w.next())).toEqual({ OWN: "x" });
    expect((await strict.ended()).code).toBe(status.NOT_FOUND);
    w.cancel();
  });

  it("when a grant expires, then the watch learns it by its timer, with no write at all", async () => {
    const name = fresh("timed");
    await create(name, { v: "soon-gone" });
    const expireTime = new Date(Date.now() + 1500);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:rose", permission: Permission.PERMISSION_READ, expireTime }, owner);
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, reader);
    expect(values(await w.next())).toEqual({ V: "soon-gone" });
    const end = await w.ended();
    expect(end.code).toBe(status.NOT_FOUND);
    expect(Date.now()).toBeGreaterThanOrEqual(expireTime.getTime());
  });

  it("when the token expires, then the stream ends with UNAUTHENTICATED", async () => {
    const name = fresh("exp");
    await create(name, { v: "1" });
    const short = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"], ttlSec: 2 });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, short);
    await w.next();
    expect((await w.ended(10_000)).code).toBe(status.UNAUTHENTICATED);
  });

  it("when the request is bad or the source is missing or not the caller's, then the stream ends with that RPC's usual code", async () => {
    const name = fresh("exists");
    await create(name, { v: "1" });
    const cases: Array<[WatchRequest, string, number]> = [
      [{ mesh: MESH, items: [] }, owner, status.INVALID_ARGUMENT],
      [{ mesh: MESH, items: [{ name: "Bad_Name" }] }, owner, status.INVALID_ARGUMENT],
      [{ mesh: MESH, items: [{ name: "nope" }] }, owner, status.NOT_FOUND],
      [{ mesh: MESH, items: [{ name }] }, reader, status.NOT_FOUND],
      [{ mesh: MESH, items: [{ name }] }, "not-a-token", status.UNAUTHENTICATED],
    ];
    for (const [req, token, code] of cases) {
      const w = openWatch(s.client, req, token);
      expect((await w.ended()).code).toBe(code);
    }
  });

  it("when a reader is slow, then a burst of updates coalesces and it still ends on the latest state", async () => {
    const name = fresh("burst");
    const big = (i: number): string => `${i}:`.padEnd(256 * 1024, "x");
    await create(name, { blob: big(0) });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    await w.next();
    w.call.pause();
    const updates = 30;
    for (let i = 1; i <= updates; i++) await update(name, { blob: big(i) });
    w.call.resume();
    let last = "";
    while (!last.startsWith(`${updates}:`)) last = values(await w.next()).BLOB!;
    expect(w.received.length).toBeLessThan(updates + 1);
    w.cancel();
  });

  it("when the stream ends, then one log line records it, without any value", async () => {
    const name = fresh("logged");
    await create(name, { v: "LOGGED-VALUE-MARKER" });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name: "missing-one" }] }, owner);
    await w.ended();
    const ok = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    await ok.next();
    ok.cancel();
    await new Promise((r) => setTimeout(r, 100));
    const lines = s.logs.filter((l) => l.includes('"WatchProjection"'));
    expect(lines.some((l) => l.includes('"NOT_FOUND"'))).toBe(true);
    expect(lines.some((l) => l.includes('"CANCELLED"'))).toBe(true);
    expect(s.logs.join("\n")).not.toContain("LOGGED-VALUE-MARKER");
  });
});

describe("WatchProjection limits and shutdown", () => {
  it("when a tenant holds --max-watches-per-tenant watches, then one more is RESOURCE_EXHAUSTED; other tenants and a freed slot are fine", async () => {
    const t = await startTestServer({ maxWatchesPerTenant: "2" });
    try {
      const tok = await t.token({ tenant: "acme", sub: "o", roles: ["data-developer"] });
      const other = await t.token({ tenant: "globex", sub: "o", roles: ["data-developer"] });
      await t.call("createSecret", { mesh: MESH, name: "s", stringData: { a: "1" } }, tok);
      await t.call("createSecret", { mesh: MESH, name: "s", stringData: { a: "1" } }, other);
      const req = { mesh: MESH, items: [{ name: "s" }] };
      const a = openWatch(t.client, req, tok);
      const b = openWatch(t.client, req, tok);
      await a.next();
      await b.next();
      const c = openWatch(t.client, req, tok);
      expect((await c.ended()).code).toBe(status.RESOURCE_EXHAUSTED);
      const g = openWatch(t.client, req, other);
      await g.next();
      a.cancel();
      await expect(a.ended()).resolves.toMatchObject({ code: status.CANCELLED });
      // The server forgets the cancelled watch as soon as it hears of the cancel.
      let d = openWatch(t.client, req, tok);
      for (let i = 0; i < 50 && (await d.outcome()) !== "message"; i++) {
        await new Promise((r) => setTimeout(r, 20));
        d = openWatch(t.client, req, tok);
      }
      expect(d.received).toHaveLength(1);
      expect(t.app.watches.openWatches).toBe(3);
    } finally {
      await t.stop();
    }
  });

  it("when the server shuts down, then open watches end with UNAVAILABLE and the shutdown completes", async () => {
    const t = await startTestServer();
    const tok = await t.token({ tenant: "acme", sub: "o", roles: ["data-developer"] });
    await t.call("createSecret", { mesh: MESH, name: "s", stringData: { a: "1" } }, tok);
    const w = openWatch(t.client, { mesh: MESH, items: [{ name: "s" }] }, tok);
    await w.next();
    const stopped = t.app.close(30_000);
    const end: ServiceError = await w.ended();
    expect(end.code).toBe(status.UNAVAILABLE);
    await stopped; // streams do not hold the drain: it ends long before the 30 s grace
    t.client.close();
    rmSync(t.dataDir, { recursive: true, force: true });
  });
});
