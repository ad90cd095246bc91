/**
 * Acknowledged delivery and rollout status (#30 items 1 and 2, SPEC §4): every
 * WatchProjection message carries its watch's consumer_id; AckProjection records the
 * revision applied on the watch's lease row, ListConsumers shows it, and GetRollout counts
 * who applied a version of a secret. Only the watch's own caller acks; an ack lands on
 * any worker.
 */
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Permission,
  ProjectSecretsRequest,
  SecretServiceClient,
  type AuditEvent,
  type ListConsumersResponse,
  type Projection,
  type Rollout,
  type Secret,
} from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";
import { eventually } from "../conformance/storage-suite.js";

const MESH = "m";
let s: TestServer;
let owner: string;
let seq = 0;
const fresh = (p: string): string => `${p}-${++seq}`;

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
});

afterAll(async () => {
  await s.stop();
});

const consumersOf = async (name: string, tok = owner): Promise<ListConsumersResponse["consumers"]> =>
  (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, tok)).consumers;

describe("acknowledged delivery", () => {
  it("when a watcher acks the revision it applied, then ListConsumers shows its consumer_id, applied revision, time and version, on both transports", async () => {
    const name = fresh("acked");
    const created = await s.call<Secret>("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    // No deadline: the node:http2 route; a deadline: grpc-js's (watch-projection.ts).
    const plain = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const md = new Metadata();
    md.set("authorization", `Bearer ${owner}`);
    const timed = s.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name }] }), md, { deadline: Date.now() + 60_000 });
    const timedFirst = new Promise<Projection>((resolve, reject) => timed.once("data", resolve).once("error", reject));
    const a = await plain.next();
    const b = await timedFirst;
    expect(a.consumerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.consumerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(a.consumerId).not.toBe(b.consumerId);
    expect((await consumersOf(name)).map((c) => [c.consumerId, c.appliedRevision]).sort()).toEqual([[a.consumerId, ""], [b.consumerId, ""]].sort());

    await s.call("ackProjection", { consumerId: a.consumerId, revision: a.revision }, owner);
    await s.call("ackProjection", { consumerId: b.consumerId, revision: b.revision }, owner);
    const listed = await consumersOf(name);
    for (const c of listed) {
      expect(c.appliedRevision).toBe(a.revision);
      expect(c.appliedTime!.getTime()).toBeGreaterThan(0);
      expect(c.applied).toEqual([{ mesh: MESH, name, version: 1 }]);
    }
    // A newer revision acked, then the older one again: the newer stays.
    await s.call("updateSecret", { mesh: MESH, name, etag: created.etag, stringData: { v: "2" } }, owner);
    const a2 = await plain.next();
    expect(a2.consumerId).toBe(a.consumerId);
    await s.call("ackProjection", { consumerId: a.consumerId, revision: a2.revision }, owner);
    await s.call("ackProjection", { consumerId: a.consumerId, revision: a.revision }, owner);
    const after = (await consumersOf(name)).find((c) => c.consumerId === a.consumerId)!;
    expect(after).toMatchObject({ appliedRevision: a2.revision, applied: [{ mesh: MESH, name, version: 2 }] });
    // The ack is audited like any call, about the source it confirmed.
    const auditor = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
    const acked = async (): Promise<number[]> =>
      (await s.call<{ events: AuditEvent[] }>("listAuditEvents", { mesh: MESH, name }, auditor)).events.filter((e) => e.method === "AckProjection" && e.code === "OK").map((e) => e.version);
    await eventually(async () => (await acked()).includes(2), 10_000).catch(() => undefined);
    expect(await acked()).toEqual(expect.arrayContaining([1, 2]));
    plain.cancel();
    timed.cancel();
  });

  it("when an ack names an unknown, ended, malformed or foreign watch, or a revision it never sent, then it is refused with the right code", async () => {
    const name = fresh("bad-acks");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:pete", permission: Permission.PERMISSION_PROJECT }, owner);
    const pete = await s.token({ tenant: "acme", sub: "pete", roles: ["sidecar"] });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, pete);
    const m = await w.next();
    const ack = (consumerId: string, revision: string, tok: string): Promise<number> => codeOf(s.call("ackProjection", { consumerId, revision }, tok));

    expect(await ack("00000000-0000-4000-8000-000000000000", m.revision, pete)).toBe(status.NOT_FOUND);
    expect(await ack("not a consumer id", m.revision, pete)).toBe(status.INVALID_ARGUMENT);
    expect(await ack(m.consumerId, "", pete)).toBe(status.INVALID_ARGUMENT);
    expect(await ack(m.consumerId, "zz", pete)).toBe(status.INVALID_ARGUMENT);
    expect(await ack(m.consumerId, "a".repeat(64), pete)).toBe(status.INVALID_ARGUMENT); // never sent
    // Same tenant, another caller (the owner, even): PERMISSION_DENIED; another tenant: NOT_FOUND (hides existence).
    expect(await ack(m.consumerId, m.revision, owner)).toBe(status.PERMISSION_DENIED);
    const globex = await s.token({ tenant: "globex", sub: "pete", roles: ["tenant-admin"] });
    expect(await ack(m.consumerId, m.revision, globex)).toBe(status.NOT_FOUND);
    expect((await consumersOf(name))[0]!.appliedRevision).toBe("");
    await s.call("ackProjection", { consumerId: m.consumerId, revision: m.revision }, pete);
    expect((await consumersOf(name))[0]!.appliedRevision).toBe(m.revision);
    w.cancel();
    await eventually(async () => (await consumersOf(name)).length === 0);
    expect(await ack(m.consumerId, m.revision, pete)).toBe(status.NOT_FOUND);
  });
});

describe("rollout status", () => {
  it("when consumers ack, then GetRollout counts who applied the version, lists who is behind, and converges", async () => {
    const name = fresh("rollout");
    const created = await s.call<Secret>("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    const empty = await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner);
    expect(empty).toMatchObject({ mesh: MESH, name, version: 1, consumers: 0, applied: 0, behind: [], converged: true, state: 0 });
    const w1 = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const w2 = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const [m1, m2] = [await w1.next(), await w2.next()];
    await s.call("ackProjection", { consumerId: m1.consumerId, revision: m1.revision }, owner);
    await s.call("ackProjection", { consumerId: m2.consumerId, revision: m2.revision }, owner);
    expect(await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner)).toMatchObject({ version: 1, consumers: 2, applied: 2, converged: true });

    await s.call<Secret>("updateSecret", { mesh: MESH, name, etag: created.etag, stringData: { v: "2" } }, owner);
    const n1 = await w1.next();
    await w2.next();
    await s.call("ackProjection", { consumerId: n1.consumerId, revision: n1.revision }, owner);
    const r = await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner);
    expect(r).toMatchObject({ version: 2, consumers: 2, applied: 1, converged: false });
    expect(r.behind.map((c) => [c.consumerId, c.applied])).toEqual([[m2.consumerId, [{ mesh: MESH, name, version: 1 }]]]);
    expect(r.behind[0]!.replica).not.toBe("");
    // An older version has converged already; a version that does not exist is NOT_FOUND.
    expect(await s.call<Rollout>("getRollout", { mesh: MESH, name, version: 1 }, owner)).toMatchObject({ applied: 2, converged: true });
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name, version: 3 }, owner))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name, version: -1 }, owner))).toBe(status.INVALID_ARGUMENT);
    // The one behind leaves: dropped from the count, converged.
    w2.cancel();
    await eventually(async () => (await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner)).consumers === 1);
    expect(await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner)).toMatchObject({ consumers: 1, applied: 1, converged: true });
    w1.cancel();
  });

  it("when someone without ADMIN or of another tenant asks for a rollout, then it is refused (PERMISSION_DENIED, NOT_FOUND)", async () => {
    const name = fresh("rollout-access");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:pete", permission: Permission.PERMISSION_PROJECT }, owner);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:adam", permission: Permission.PERMISSION_ADMIN }, owner);
    const adam = await s.token({ tenant: "acme", sub: "adam", roles: [] });
    const admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
    for (const tok of [owner, adam, admin]) expect((await s.call<Rollout>("getRollout", { mesh: MESH, name }, tok)).version).toBe(1);
    const pete = await s.token({ tenant: "acme", sub: "pete", roles: ["sidecar"] });
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name }, pete))).toBe(status.PERMISSION_DENIED);
    const globex = await s.token({ tenant: "globex", sub: "olivia", roles: ["tenant-admin"] });
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name }, globex))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name: "Not_Valid" }, owner))).toBe(status.INVALID_ARGUMENT);
  });
});

describe("across workers", () => {
  it("when acks land on either of two workers, then each is recorded on the watch's row and ListConsumers shows it", async () => {
    const w2 = await startTestServer({ workers: "2" });
    try {
      const tok = await w2.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
      const name = "across";
      let etag = (await w2.call<Secret>("createSecret", { mesh: MESH, name, stringData: { v: "0" } }, tok)).etag;
      const watch = openWatch(w2.client, { mesh: MESH, items: [{ name }] }, tok);
      let m = await watch.next();
      const workers = new Set<unknown>();
      for (let i = 1; i <= 6; i++) {
        // A connection of its own per ack, so the primary deals it to one worker or the other.
        const c = new SecretServiceClient(w2.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
        const md = new Metadata();
        md.set("authorization", `Bearer ${tok}`);
        const rid = `ack-${i}`;
        md.set("x-request-id", rid);
        await new Promise<void>((resolve, reject) =>
          c.ackProjection({ consumerId: m.consumerId, revision: m.revision }, md, (e: ServiceError | null) => (e ? reject(e) : resolve())),
        );
        c.close();
        const listed = (await w2.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, tok)).consumers;
        expect(listed.map((l) => [l.consumerId, l.appliedRevision, l.applied[0]?.version])).toEqual([[m.consumerId, m.revision, i]]);
        await eventually(() => w2.logs.some((l) => l.includes(`"rid":"${rid}"`)), 15_000);
        workers.add((JSON.parse(w2.logs.find((l) => l.includes(`"rid":"${rid}"`))!) as { worker: unknown }).worker);
        etag = (await w2.call<Secret>("updateSecret", { mesh: MESH, name, etag, stringData: { v: String(i) } }, tok)).etag;
        m = await watch.next();
      }
      expect(workers.size).toBe(2); // some ack landed on the worker that does not hold the watch
      watch.cancel();
    } finally {
      await w2.stop();
    }
  });
});
