/**
 * #16 item 4: answers that could outgrow the server's 16 MiB send limit. One
 * data-developer's secrets with 256 KiB of annotations each made the default ListSecrets
 * page unanswerable for everyone listing the mesh; grants with long key lists could do
 * the same to ListGrants, which has no paging. Pages are now bounded by encoded bytes
 * (a shorter page and a next_page_token that continues exactly), and grants per secret
 * by count and size.
 */
import { randomBytes } from "node:crypto";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Grant, ListConsumersResponse, ListGrantsResponse } from "../../src/gen/secrets/v1/secrets.js";
import { ListAuditEventsResponse, ListSecretsResponse, Permission } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch, type WatchStream } from "../helpers/watch.js";

const M = "big-meta";
const SECRETS = 70;
// Just under the 256 KiB annotation cap (key + value bytes).
const fat = { "example.com/blob": "a".repeat(256 * 1024 - 32) };
/** A page of ListSecrets / ListConsumers / ListAuditEvents, encoded (README "Limits"; #27: a page is encoded in one turn). */
const PAGE_BYTES = 1024 * 1024;

let s: TestServer;
let admin: string;
let developer: string;

beforeAll(async () => {
  s = await startTestServer();
  admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  developer = await s.token({ tenant: "acme", sub: "dev", roles: ["data-developer"] });
  for (let i = 0; i < SECRETS; i++) {
    await s.call("createSecret", { mesh: M, name: `fat-${String(i).padStart(3, "0")}`, stringData: { k: "v" }, annotations: fat }, developer);
  }
});

afterAll(async () => {
  await s?.stop();
});

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}

describe("ListSecrets pages bounded by encoded bytes", () => {
  it("when 70 secrets carry 256 KiB of annotations each (~17.5 MiB), then the default page is shorter, and its tokens reach every secret exactly once", async () => {
    for (const pageSize of [0, 1000]) {
      const seen: string[] = [];
      let token = "";
      let pages = 0;
      do {
        const page = await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize, pageToken: token }, admin);
        expect(page.secrets.length).toBeGreaterThan(0);
        expect(page.secrets.length).toBeLessThan(SECRETS);
        for (const x of page.secrets) expect(x.annotations).toEqual(fat);
        expect(ListSecretsResponse.encode(page).finish().length).toBeLessThanOrEqual(PAGE_BYTES);
        seen.push(...page.secrets.map((x) => x.name));
        token = page.nextPageToken;
        pages++;
      } while (token !== "" && pages < 50);
      expect(seen).toEqual([...Array(SECRETS).keys()].map((i) => `fat-${String(i).padStart(3, "0")}`));
      expect(pages).toBeGreaterThanOrEqual(17); // 17.5 MiB in pages of at most 1 MiB
    }
  });

  it("when a small page_size is asked, then it still wins over the byte bound", async () => {
    const page = await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize: 3 }, admin);
    expect(page.secrets.map((x) => x.name)).toEqual(["fat-000", "fat-001", "fat-002"]);
    const next = await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize: 3, pageToken: page.nextPageToken }, admin);
    expect(next.secrets.map((x) => x.name)).toEqual(["fat-003", "fat-004", "fat-005"]);
  });
});

describe("metadata per secret bounded", () => {
  it("when a secret would hold more than 4,096 data keys, then INVALID_ARGUMENT names data", async () => {
    const many = Object.fromEntries([...Array(4097).keys()].map((i) => [`k${i}`, ""]));
    const err = await failure(s.call("createSecret", { mesh: M, name: "many-keys", stringData: many }, developer));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe("data: must have at most 4096 keys (got 4097)");
    const ok = Object.fromEntries([...Array(4096).keys()].map((i) => [`k${i}`, ""]));
    await s.call("createSecret", { mesh: M, name: "many-keys", stringData: ok }, developer);
  });
});

describe("ListGrants bounded", () => {
  it("when grants with 256 long keys each pile up on one secret, then a grant past the bound is RESOURCE_EXHAUSTED and ListGrants still answers", async () => {
    // 256 keys of ~250 characters: each full-key grant is ~64 KiB encoded; 260 of them
    // would be ~16.6 MiB, past the send limit.
    const keys = [...Array(256).keys()].map((i) => `${String(i).padStart(3, "0")}-${"k".repeat(246)}`);
    await s.call("createSecret", { mesh: M, name: "shared", data: Object.fromEntries(keys.map((k) => [k, randomBytes(1)])) }, developer);
    let accepted = 0;
    let refused: ServiceError | undefined;
    for (let i = 0; i < 260 && refused === undefined; i++) {
      try {
        await s.call<Grant>("grantAccess", { mesh: M, name: "shared", subject: `user:u${i}`, permission: Permission.PERMISSION_READ, keys }, developer);
        accepted++;
      } catch (e) {
        refused = e as ServiceError;
      }
    }
    expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(refused?.details).toMatch(/^the grants of secret "shared" would take \d+ bytes \(at most 4194304\): revoke some first$/);
    const listed = await s.call<ListGrantsResponse>("listGrants", { mesh: M, name: "shared" }, developer);
    expect(listed.grants).toHaveLength(accepted);
    // Replacing a grant in place is not a new one; revoking one makes room.
    await s.call("grantAccess", { mesh: M, name: "shared", subject: "user:u0", permission: Permission.PERMISSION_READ, keys }, developer);
    await s.call("revokeAccess", { mesh: M, name: "shared", subject: "user:u1", permission: Permission.PERMISSION_READ }, developer);
    await s.call("grantAccess", { mesh: M, name: "shared", subject: "user:late", permission: Permission.PERMISSION_READ, keys }, developer);
    expect(await codeOf(s.call("grantAccess", { mesh: M, name: "shared", subject: "user:later", permission: Permission.PERMISSION_READ, keys }, developer))).toBe(status.RESOURCE_EXHAUSTED);
  });
});

describe("ListConsumers paged", () => {
  it("when a secret has more consumers than a page holds, then pages (by page_size, and at most 1 MiB) reach every consumer exactly once, oldest first", async () => {
    // A consumer carries its token's sub and roles: up to ~8 KiB each, and a secret may
    // have as many as watches are allowed, so one answer could pass the send limit.
    await s.call("createSecret", { mesh: M, name: "watched", stringData: { k: "v" } }, developer);
    await s.call("grantAccess", { mesh: M, name: "watched", subject: "role:app", permission: Permission.PERMISSION_PROJECT }, developer);
    const watches: WatchStream[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const t = await s.token({ tenant: "acme", sub: `app-${i}`, roles: ["app", "r".repeat(2000)] });
        const w = openWatch(s.client, { mesh: M, items: [{ name: "watched" }] }, t);
        await w.next();
        watches.push(w);
      }
      const subs: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await s.call<ListConsumersResponse>("listConsumers", { mesh: M, name: "watched", pageSize: 2, pageToken }, developer);
        expect(page.consumers.length).toBeLessThanOrEqual(2);
        subs.push(...page.consumers.map((c) => c.sub));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "" && pages < 10);
      expect(pages).toBe(3);
      expect(subs.sort()).toEqual(["app-0", "app-1", "app-2", "app-3", "app-4"]);
      const all = await s.call<ListConsumersResponse>("listConsumers", { mesh: M, name: "watched" }, developer);
      expect(all.consumers).toHaveLength(5);
      expect(all.nextPageToken).toBe("");
      // A token of another list is refused.
      const other = await s.call<ListConsumersResponse>("listConsumers", { mesh: M, name: "watched", pageSize: 1 }, developer);
      expect(await codeOf(s.call("listSecrets", { mesh: M, pageToken: other.nextPageToken }, admin))).toBe(status.INVALID_ARGUMENT);
    } finally {
      for (const w of watches) w.cancel();
    }
  });
});

describe("ListAuditEvents pages bounded by encoded bytes", () => {
  it("when 260 reads of 256 long keys each are audited (~16.6 MiB of events), then page_size 1000 still answers, in pages that reach every event once", async () => {
    const keys = [...Array(256).keys()].map((i) => `${String(i).padStart(3, "0")}-${"a".repeat(246)}`);
    await s.call("createSecret", { mesh: M, name: "audited", data: Object.fromEntries(keys.map((k) => [k, Buffer.from("x")])) }, developer);
    const READS = 260;
    for (let i = 0; i < READS; i++) await s.call("getSecret", { mesh: M, name: "audited", keys }, developer);
    const list = async (): Promise<{ ids: string[]; pages: number }> => {
      const ids: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await s.call<ListAuditEventsResponse>("listAuditEvents", { mesh: M, name: "audited", sub: "dev", pageSize: 1000, pageToken }, admin);
        ids.push(...page.events.filter((e) => e.method === "GetSecret").map((e) => e.requestId));
        expect(ListAuditEventsResponse.encode(page).finish().length).toBeLessThanOrEqual(PAGE_BYTES);
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "" && pages < 50);
      return { ids, pages };
    };
    // Events are flushed within about a second.
    let got = { ids: [] as string[], pages: 0 };
    for (let tries = 0; tries < 50 && got.ids.length < READS; tries++) {
      await new Promise((r) => setTimeout(r, 200));
      got = await list();
    }
    const { ids, pages } = got;
    expect(pages).toBeGreaterThanOrEqual(16); // ~16.6 MiB in pages of at most 1 MiB
    expect(ids).toHaveLength(READS);
    expect(new Set(ids).size).toBe(READS);
  });
});
