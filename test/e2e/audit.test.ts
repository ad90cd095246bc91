/**
 * The audit trail end to end (SPEC §6): events recorded by the real server for allowed
 * and denied calls, read back through ListAuditEvents (tenant-admin, own tenant only,
 * filters, keyset paging), the --audit-file copy, the one-second flush, the flush on
 * close, and retention pruning. Values and tokens used here must appear in none of it,
 * nor in the log or the metrics.
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, ProjectSecretsRequest, Retire, RotationState, type AuditEvent, type ListAuditEventsResponse, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { waitFor } from "../helpers/cli-process.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "payments";
const VALUE = "audit-value-Zq8vX2pL";
const VALUE2 = "audit-value-second-Wm3kR7";

let server: TestServer;
let dir: string;
let auditFile: string;
let admin: string;
let owner: string;
let stranger: string;
let reader: string;
let otherAdmin: string;
const tokens: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-audit-"));
  auditFile = path.join(dir, "audit.jsonl");
  server = await startTestServer({ auditFile, metricsListen: "127.0.0.1:0" });
  admin = await server.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  owner = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  stranger = await server.token({ tenant: "acme", sub: "sam", roles: [] });
  reader = await server.token({ tenant: "acme", sub: "rita", roles: [] });
  otherAdmin = await server.token({ tenant: "globex", sub: "gary", roles: ["tenant-admin"] });
  tokens.push(admin, owner, stranger, reader, otherAdmin);
  await server.call("createSecret", { mesh: MESH, name: "db-password", stringData: { password: VALUE, user: "app" } }, owner);
  await server.call("grantAccess", { mesh: MESH, name: "db-password", subject: "user:rita", permission: Permission.PERMISSION_PROJECT }, owner);
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function list(token: string, req: object = {}): Promise<ListAuditEventsResponse> {
  return server.call<ListAuditEventsResponse>("listAuditEvents", req, token);
}

async function allEvents(token: string, req: object = {}, pageSize = 1000): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let pageToken = "";
  for (let i = 0; i < 1000; i++) {
    const page = await list(token, { ...req, pageSize, pageToken });
    out.push(...page.events);
    if (page.nextPageToken === "") return out;
    pageToken = page.nextPageToken;
  }
  throw new Error("paging did not end");
}

function withRequestId(id: string): Metadata {
  const md = new Metadata();
  md.set("x-request-id", id);
  return md;
}

describe("audit events", () => {
  it("when a read is denied, then an event records who, what, the outcome and the peer, and no value", async () => {
    expect(await codeOf(server.call("getSecret", { mesh: MESH, name: "db-password", keys: ["password"] }, stranger, withRequestId("rid-denied-1")))).toBe(status.NOT_FOUND);
    expect(await codeOf(server.call("getSecret", { mesh: MESH, name: "db-password" }, reader, withRequestId("rid-denied-2")))).toBe(status.PERMISSION_DENIED);
    await server.app.audit.flush();
    const events = await allEvents(admin, { name: "db-password" });
    const notFound = events.find((e) => e.requestId === "rid-denied-1");
    expect(notFound).toMatchObject({ method: "GetSecret", sub: "sam", mesh: MESH, name: "db-password", version: 0, keys: ["password"], code: "NOT_FOUND" });
    expect(notFound!.peer).toMatch(/127\.0\.0\.1/);
    expect(Math.abs(notFound!.time!.getTime() - Date.now())).toBeLessThan(60_000);
    expect(events.find((e) => e.requestId === "rid-denied-2")).toMatchObject({ sub: "rita", code: "PERMISSION_DENIED" });
  });

  it("when a read succeeds, then its event carries the version read and the keys returned", async () => {
    const upd = await server.call<Secret>("getSecret", { mesh: MESH, name: "db-password" }, owner);
    await server.call("updateSecret", { mesh: MESH, name: "db-password", etag: upd.etag, stringData: { password: VALUE2, user: "app" } }, owner);
    await server.call("getSecret", { mesh: MESH, name: "db-password", version: 1, keys: ["user"] }, owner, withRequestId("rid-get-v1"));
    await server.call("projectSecrets", { mesh: MESH, items: [{ name: "db-password", keys: [{ key: "password" }] }] }, reader, withRequestId("rid-project"));
    await server.app.audit.flush();
    const events = await allEvents(admin, { mesh: MESH, name: "db-password" });
    expect(events.find((e) => e.requestId === "rid-get-v1")).toMatchObject({ method: "GetSecret", version: 1, keys: ["user"], code: "OK", sub: "olivia" });
    expect(events.find((e) => e.requestId === "rid-project")).toMatchObject({ method: "ProjectSecrets", version: 2, keys: ["password"], code: "OK", sub: "rita" });
    const methods = new Set(events.map((e) => e.method));
    for (const m of ["CreateSecret", "GrantAccess", "UpdateSecret", "GetSecret", "ProjectSecrets"]) expect(methods).toContain(m);
    expect(events.find((e) => e.method === "UpdateSecret")).toMatchObject({ version: 2, keys: ["password", "user"], code: "OK" });
  });

  it("when a WatchProjection stream is opened, then its first message is audited, and a denied one once with its code", async () => {
    const watch = (token: string, rid: string) => {
      const md = withRequestId(rid);
      md.set("authorization", `Bearer ${token}`);
      return server.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "db-password", keys: [{ key: "password" }] }] }), md);
    };
    const ok = watch(reader, "rid-watch-ok");
    await new Promise<void>((resolve, reject) => {
      ok.once("data", () => resolve());
      ok.once("error", reject);
    });
    await server.app.audit.flush();
    const open = (await allEvents(admin, { name: "db-password" })).filter((e) => e.requestId === "rid-watch-ok");
    expect(open).toHaveLength(1);
    expect(open[0]).toMatchObject({ method: "WatchProjection", sub: "rita", version: 2, keys: ["password"], code: "OK" });
    ok.on("error", () => undefined);
    ok.cancel();
    const denied = watch(stranger, "rid-watch-denied");
    const code = await new Promise<number>((resolve) => denied.once("error", (e: { code: number }) => resolve(e.code)));
    expect(code).toBe(status.NOT_FOUND);
    // The hub forgets a cancelled watch in the same step that would audit its end.
    await waitFor("the cancelled stream's end at the server", () => server.app.watches.openWatches === 0);
    await server.app.audit.flush();
    const events = await allEvents(admin, { name: "db-password" });
    expect(events.filter((e) => e.requestId === "rid-watch-ok")).toHaveLength(1);
    expect(events.filter((e) => e.requestId === "rid-watch-denied").map((e) => [e.method, e.sub, e.code])).toEqual([["WatchProjection", "sam", "NOT_FOUND"]]);
  });

  it("when a watched secret is updated twice, then the trail has one event per message delivered, with the version and keys it carried", async () => {
    const created = await server.call<Secret>("createSecret", { mesh: MESH, name: "watched", stringData: { password: "w-1", user: "app" } }, owner);
    await server.call("grantAccess", { mesh: MESH, name: "watched", subject: "user:rita", permission: Permission.PERMISSION_PROJECT }, owner);
    const md = withRequestId("rid-watch-deliveries");
    md.set("authorization", `Bearer ${reader}`);
    const stream = server.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: [{ name: "watched", keys: [{ key: "password" }] }] }), md);
    const received: number[] = [];
    const waiters: Array<() => void> = [];
    stream.on("data", (p: { sources: { version: number }[] }) => {
      received.push(p.sources[0]!.version);
      waiters.splice(0).forEach((w) => w());
    });
    stream.on("error", () => undefined);
    const version = async (v: number): Promise<void> => {
      while (!received.includes(v)) await new Promise<void>((r) => waiters.push(r));
    };
    await version(1);
    let etag = created.etag;
    for (const [i, v] of [[2, "w-2"], [3, "w-3"]] as const) {
      etag = (await server.call<Secret>("updateSecret", { mesh: MESH, name: "watched", etag, stringData: { password: v, user: "app" } }, owner)).etag;
      await version(i);
    }
    stream.cancel();
    await server.app.audit.flush();
    const events = (await allEvents(admin, { name: "watched" })).filter((e) => e.requestId === "rid-watch-deliveries");
    expect(events.map((e) => e.version)).toEqual(received);
    expect(received).toEqual(expect.arrayContaining([1, 2, 3]));
    for (const e of events) expect(e).toMatchObject({ method: "WatchProjection", sub: "rita", mesh: MESH, keys: ["password"], code: "OK" });
  });

  it("when another tenant's admin lists, then it sees none of this tenant's events, and this tenant none of its", async () => {
    await server.call("createSecret", { mesh: MESH, name: "db-password", stringData: { password: "globex-pw" } }, otherAdmin);
    await server.app.audit.flush();
    const theirs = await allEvents(otherAdmin);
    expect(theirs.length).toBeGreaterThan(0);
    expect(theirs.every((e) => e.sub === "gary")).toBe(true);
    expect((await allEvents(admin)).some((e) => e.sub === "gary")).toBe(false);
  });

  it("when a caller is not tenant-admin, then ListAuditEvents is PERMISSION_DENIED; bad filters are INVALID_ARGUMENT", async () => {
    expect(await codeOf(list(owner))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(list(stranger, { sub: "olivia" }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(list(admin, { name: "Not_A_Name" }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(list(admin, { mesh: "-bad-" }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(list(admin, { pageSize: -1 }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(list(admin, { since: new Date(2_000), until: new Date(1_000) }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(list(admin, { pageToken: "garbage" }))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(list("not-a-token"))).toBe(status.UNAUTHENTICATED);
    const meshLimited = await server.token({ tenant: "acme", sub: "mel", roles: ["tenant-admin"], meshes: ["other"] });
    tokens.push(meshLimited);
    expect(await codeOf(list(meshLimited, { mesh: MESH }))).toBe(status.PERMISSION_DENIED);
    expect((await allEvents(meshLimited)).some((e) => e.mesh === MESH)).toBe(false);
  });

  it("when events are paged, then every page is at most page_size, pages join into the full list in time order, and a token is bound to its filters", async () => {
    for (let i = 0; i < 7; i++) await server.call("listSecrets", { mesh: "paging" }, owner, withRequestId(`rid-page-${i}`));
    await server.app.audit.flush();
    const full = await allEvents(admin, { mesh: "paging" }, 1000);
    expect(full.map((e) => e.requestId)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `rid-page-${i}`));
    const paged: AuditEvent[] = [];
    let pageToken = "";
    do {
      const page = await list(admin, { mesh: "paging", pageSize: 3, pageToken });
      expect(page.events.length).toBeLessThanOrEqual(3);
      paged.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    expect(paged.map((e) => e.requestId)).toEqual(full.map((e) => e.requestId));
    const first = await list(admin, { mesh: "paging", pageSize: 3 });
    expect(await codeOf(list(admin, { mesh: MESH, pageSize: 3, pageToken: first.nextPageToken }))).toBe(status.INVALID_ARGUMENT);
    const times = (await allEvents(admin)).map((e) => e.time!.getTime());
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it("when filtering by sub and time, then only matching events come back", async () => {
    const bySam = await allEvents(admin, { sub: "sam" });
    expect(bySam.length).toBeGreaterThan(0);
    expect(bySam.every((e) => e.sub === "sam")).toBe(true);
    expect(await allEvents(admin, { until: new Date(1_000) })).toEqual([]);
    expect(await allEvents(admin, { since: new Date(Date.now() + 3_600_000) })).toEqual([]);
    const recent = await allEvents(admin, { since: new Date(Date.now() - 3_600_000) });
    expect(recent.length).toBe((await allEvents(admin)).length);
  });

  it("when a call is made, then its event is listed within about a second without any explicit flush", async () => {
    await server.call("listGrants", { mesh: MESH, name: "db-password" }, owner, withRequestId("rid-timer"));
    let seen = false;
    for (let i = 0; i < 100 && !seen; i++) {
      seen = (await allEvents(admin, { sub: "olivia" })).some((e) => e.requestId === "rid-timer");
      if (!seen) await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen).toBe(true);
  });

  it("when a secret is rotated and its previous stage read, then each event names the stage of its version, and each retirement is an event of its own", async () => {
    const rotate = async (etag: string, password: string, retire: Retire, rid: string): Promise<Rollout> =>
      server.call<Rollout>("rotateSecret", { mesh: MESH, name: "staged", etag, stringData: { password }, retire }, owner, withRequestId(rid));
    const created = await server.call<Secret>("createSecret", { mesh: MESH, name: "staged", stringData: { password: "staged-pw-1" } }, owner, withRequestId("rid-stage-create"));
    await server.call("grantAccess", { mesh: MESH, name: "staged", subject: "user:rita", permission: Permission.PERMISSION_PROJECT }, owner);
    // NEVER: version 1 stays readable as stage previous.
    const r2 = await rotate(created.etag, "staged-pw-2", Retire.RETIRE_NEVER, "rid-stage-rotate-2");
    expect(r2.version).toBe(2);
    expect((await server.call<Secret>("getSecret", { mesh: MESH, name: "staged", stage: "previous" }, owner, withRequestId("rid-stage-get-previous"))).version).toBe(1);
    await server.call("getSecret", { mesh: MESH, name: "staged" }, owner, withRequestId("rid-stage-get-current"));
    await codeOf(server.call("getSecret", { mesh: MESH, name: "staged", stage: "pending" }, owner, withRequestId("rid-stage-get-pending")));
    await server.call("projectSecrets", { mesh: MESH, items: [{ name: "staged", stage: "previous", envPrefix: "OLD_" }, { name: "staged" }] }, reader, withRequestId("rid-stage-project-both"));
    await server.call("projectSecrets", { mesh: MESH, items: [{ name: "staged", stage: "previous" }] }, reader, withRequestId("rid-stage-project-previous"));
    // IMMEDIATE without a rotator: RotateSecret's own write retires version 2.
    const etag2 = (await server.call<Secret>("getSecret", { mesh: MESH, name: "staged" }, owner)).etag;
    await rotate(etag2, "staged-pw-3", Retire.RETIRE_IMMEDIATE, "rid-stage-rotate-3");
    // AFTER_ACK with no consumer: the driver retires version 3 once it looks.
    const etag3 = (await server.call<Secret>("getSecret", { mesh: MESH, name: "staged" }, owner)).etag;
    await rotate(etag3, "staged-pw-4", Retire.RETIRE_AFTER_ACK, "rid-stage-rotate-4");
    await waitFor("the driver to retire version 3", async () => (await server.call<Rollout>("getRollout", { mesh: MESH, name: "staged" }, owner)).state === RotationState.ROTATION_STATE_DONE);
    await server.app.audit.flush();
    const events = await allEvents(admin, { name: "staged" });
    const by = (rid: string): AuditEvent[] => events.filter((e) => e.requestId === rid);
    expect(by("rid-stage-create")).toMatchObject([{ method: "CreateSecret", version: 1, stage: "current" }]);
    expect(by("rid-stage-rotate-2")).toMatchObject([{ method: "RotateSecret", version: 2, stage: "current", code: "OK" }]);
    expect(by("rid-stage-get-previous")).toMatchObject([{ method: "GetSecret", version: 1, stage: "previous", keys: ["password"], code: "OK" }]);
    expect(by("rid-stage-get-current")).toMatchObject([{ method: "GetSecret", version: 2, stage: "current", code: "OK" }]);
    // A refused read names the stage it asked for.
    expect(by("rid-stage-get-pending")).toMatchObject([{ method: "GetSecret", version: 0, stage: "pending", code: "NOT_FOUND" }]);
    expect(by("rid-stage-project-both").map((e) => [e.method, e.version, e.stage]).sort()).toEqual([
      ["ProjectSecrets", 1, "previous"],
      ["ProjectSecrets", 2, "current"],
    ]);
    expect(by("rid-stage-project-previous")).toMatchObject([{ method: "ProjectSecrets", sub: "rita", version: 1, stage: "previous", keys: ["password"] }]);
    expect(by("rid-stage-rotate-3")).toMatchObject([{ method: "RotateSecret", version: 3, stage: "current" }]);
    expect(by("rid-stage-rotate-4")).toMatchObject([{ method: "RotateSecret", version: 4, stage: "current" }]);
    const retired = events.filter((e) => e.method === "RetireVersion");
    expect(retired.map((e) => [e.version, e.stage, e.code, e.sub, e.mesh, e.requestId, e.peer])).toEqual([
      [2, "previous", "OK", "secretd:rotation", MESH, "", ""],
      [3, "previous", "OK", "secretd:rotation", MESH, "", ""],
    ]);
    // NEVER retired nothing: version 1 has no retirement event.
    expect(retired.some((e) => e.version === 1)).toBe(false);
  });

  it("when --audit-file is set, then every stored event is also a JSON line there, with its tenant", async () => {
    await server.app.audit.flush();
    const lines = readFileSync(auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const stored = await allEvents(admin);
    for (const e of stored) {
      // A watch has one event per message under one request id: its version tells them apart.
      const line = lines.find((l) => l.requestId === e.requestId && l.method === e.method && l.name === e.name && (l.version ?? 0) === e.version);
      expect(line, e.requestId).toMatchObject({ tenant: "acme", sub: e.sub, mesh: e.mesh, code: e.code, keys: e.keys, time: e.time!.toISOString() });
      // No version (the message's 0) or no stage (""): absent from the line, as from `secretd audit -o json`.
      expect(line!.version, e.requestId).toBe(e.version !== 0 ? e.version : undefined);
      expect(line!.stage, e.requestId).toBe(e.stage !== "" ? e.stage : undefined);
    }
    expect(lines.some((l) => l.tenant === "globex")).toBe(true);
    expect(lines.filter((l) => l.method === "RetireVersion" && l.stage === "previous").map((l) => l.version)).toEqual([2, 3]);
  });

  it("then no value or token used by these tests is in the log lines, the audit trail, the audit file or the metrics", async () => {
    await server.app.audit.flush();
    const metrics = await (await fetch(`http://127.0.0.1:${server.app.metricsPort!}/metrics`)).text();
    expect(metrics).toMatch(/^secretd_audit_events_written_total \d+$/m);
    const haystacks = [
      server.logs.join("\n"),
      JSON.stringify(await allEvents(admin)),
      JSON.stringify(await allEvents(otherAdmin)),
      readFileSync(auditFile, "utf8"),
      metrics,
    ];
    for (const h of haystacks) {
      for (const needle of [VALUE, VALUE2, "globex-pw", "staged-pw-1", "staged-pw-2", "staged-pw-3", "staged-pw-4", ...tokens]) expect(h).not.toContain(needle);
      expect(h).not.toContain(Buffer.from(VALUE).toString("base64"));
    }
  });
});

describe("audit queue lifecycle", () => {
  it("when the server closes right after a call, then the queued event is written before the database closes", async () => {
    const s = await startTestServer();
    const dataDir = s.dataDir;
    try {
      const t = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
      await s.call("createSecret", { mesh: MESH, name: "last-call", stringData: { a: "b" } }, t, withRequestId("rid-last"));
      expect(s.app.audit.depth).toBeGreaterThan(0);
      await s.app.close(1000);
      const again = await startTestServer({ dataDir });
      try {
        const page = await again.call<ListAuditEventsResponse>("listAuditEvents", { name: "last-call" }, t);
        expect(page.events.map((e) => e.requestId)).toEqual(["rid-last"]);
      } finally {
        await again.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("when events are older than --audit-retention, then they are pruned; younger ones stay", async () => {
    const s = await startTestServer({ auditRetention: "2s" });
    try {
      const t = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
      await s.call("listSecrets", { mesh: "old" }, t);
      await s.app.audit.flush();
      expect((await s.call<ListAuditEventsResponse>("listAuditEvents", { mesh: "old" }, t)).events).toHaveLength(1);
      await s.clock.advance(2_100);
      await s.call("listSecrets", { mesh: "young" }, t);
      await s.app.audit.flush();
      expect(await s.app.audit.prune()).toBeGreaterThanOrEqual(1);
      expect((await s.call<ListAuditEventsResponse>("listAuditEvents", { mesh: "old" }, t)).events).toEqual([]);
      expect((await s.call<ListAuditEventsResponse>("listAuditEvents", { mesh: "young" }, t)).events).toHaveLength(1);
    } finally {
      await s.stop();
    }
  });

  it("when --audit-retention is not a duration, then the server refuses to start naming the setting", async () => {
    await expect(startTestServer({ auditRetention: "forever" })).rejects.toThrow(/--audit-retention/);
  });
});
