/**
 * Rotation (#30 items 3, 4, 6) through the real server: stages (current, previous) on
 * GetSecret, projections, ListSecrets and the CLI; RotateSecret with IMMEDIATE, NEVER and
 * AFTER_ACK (no consumers: converges; a watcher that never acks: TIMED_OUT at
 * ack_timeout, on the server's clock); a restart mid-rotation resumes; two --workers
 * drive a rotation once; and the faults: immutable, stale etag, a second rotation, bad
 * input, and no generated value in any log line, audit event, record or the database.
 * SECRETD_E2E_STORAGE=postgres runs the same file on PostgreSQL.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Permission,
  Retire,
  RotationState,
  type ListAuditEventsResponse,
  type ListConsumersResponse,
  type ListSecretsResponse,
  type Projection,
  type Rollout,
  type Secret,
} from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { runCli } from "../helpers/cli.js";
import { E2E_STORAGE } from "../helpers/postgres.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

const MESH = "m";
let s: TestServer;
let owner: string;
let seq = 0;
const fresh = (p: string): string => `${p}-${++seq}`;
const text = (sec: Secret, k: string): string => Buffer.from(sec.data[k] ?? []).toString();

async function errorOf(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}

async function create(name: string, values: Record<string, string> = { user: "app", pw: "one" }, extra: object = {}): Promise<Secret> {
  return s.call<Secret>("createSecret", { mesh: MESH, name, stringData: values, ...extra }, owner);
}

async function rotate(name: string, etag: string, req: object, token = owner): Promise<Rollout> {
  return s.call<Rollout>("rotateSecret", { mesh: MESH, name, etag, ...req }, token);
}

const get = (name: string, req: object = {}, token = owner): Promise<Secret> => s.call<Secret>("getSecret", { mesh: MESH, name, ...req }, token);
const rollout = (name: string, version = 0): Promise<Rollout> => s.call<Rollout>("getRollout", { mesh: MESH, name, version }, owner);

/** The RetireVersion audit events of `name` on `server` (flushed first): [version, stage, code]. */
async function retirements(server: TestServer, name: string): Promise<Array<[number, string, string]>> {
  await server.app.audit.flush();
  const admin = await server.token({ tenant: "acme", sub: "auditor", roles: ["tenant-admin"] });
  const r = await server.call<ListAuditEventsResponse>("listAuditEvents", { name, pageSize: 1000 }, admin);
  return r.events.filter((e) => e.method === "RetireVersion").map((e) => [e.version, e.stage, e.code]);
}

/** A watcher of `name` whose lease the server has recorded (a live consumer). */
async function watcher(name: string, sub = "pete") {
  await s.call("grantAccess", { mesh: MESH, name, subject: `user:${sub}`, permission: Permission.PERMISSION_PROJECT }, owner);
  const tok = await s.token({ tenant: "acme", sub, roles: ["sidecar"] });
  const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, tok);
  const first = await w.next();
  await eventually(async () => (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner)).consumers.length === 1);
  return { w, first };
}

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
});

afterAll(async () => {
  await s.stop();
});

describe("stages", () => {
  it("Create, Update, Get and List answer stage current; unknown stage and stage with version are INVALID_ARGUMENT; previous with no rotation is NOT_FOUND naming it", async () => {
    const name = fresh("stages");
    const created = await create(name);
    expect(created.stage).toBe("current");
    const updated = await s.call<Secret>("updateSecret", { mesh: MESH, name, etag: created.etag, stringData: { user: "app", pw: "two" } }, owner);
    expect(updated.stage).toBe("current");
    expect((await get(name)).stage).toBe("current");
    expect((await get(name, { stage: "current" })).stage).toBe("current");
    // An older version holds no stage (no rotation keeps it).
    expect((await get(name, { version: 1 })).stage).toBe("");
    const listed = await s.call<ListSecretsResponse>("listSecrets", { mesh: MESH }, owner);
    expect(listed.secrets.find((x) => x.name === name)?.stage).toBe("current");

    const unknown = await errorOf(get(name, { stage: "older" }));
    expect(unknown.code).toBe(status.INVALID_ARGUMENT);
    expect(unknown.details).toContain("stage");
    const noPending = await errorOf(get(name, { stage: "pending" }));
    expect(noPending.code).toBe(status.NOT_FOUND);
    expect(noPending.details).toContain('stage "pending"');
    expect((await errorOf(get(name, { stage: "previous", version: 1 }))).code).toBe(status.INVALID_ARGUMENT);
    const none = await errorOf(get(name, { stage: "previous" }));
    expect(none.code).toBe(status.NOT_FOUND);
    expect(none.details).toContain('stage "previous"');
    expect(await codeOf(s.call("projectSecrets", { mesh: MESH, items: [{ name, stage: "older" }] }, owner))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(s.call("projectSecrets", { mesh: MESH, items: [{ name, stage: "previous" }] }, owner))).toBe(status.NOT_FOUND);
    // optional: an item whose stage holds nothing drops out.
    const p = await s.call<Projection>("projectSecrets", { mesh: MESH, items: [{ name, stage: "previous", optional: true }] }, owner);
    expect(p.values).toEqual([]);
  });

  it("a stranger learns nothing of a previous stage: NOT_FOUND as for the secret itself", async () => {
    const name = fresh("stranger");
    const c = await create(name);
    await rotate(name, c.etag, { stringData: { pw: "two" }, retire: Retire.RETIRE_NEVER });
    const stranger = await s.token({ tenant: "acme", sub: "sam", roles: ["data-developer"] });
    expect(await codeOf(get(name, { stage: "previous" }, stranger))).toBe(status.NOT_FOUND);
    const other = await s.token({ tenant: "globex", sub: "olivia", roles: ["tenant-admin"] });
    expect(await codeOf(get(name, { stage: "previous" }, other))).toBe(status.NOT_FOUND);
  });
});

describe("RotateSecret", () => {
  it("IMMEDIATE: the new version is current, keys not named are kept, and the old version is unreadable at once (by stage and by number)", async () => {
    const name = fresh("immediate");
    const c = await create(name);
    const r = await rotate(name, c.etag, { stringData: { pw: "two" }, retire: Retire.RETIRE_IMMEDIATE });
    expect(r).toMatchObject({ mesh: MESH, name, version: 2, previousVersion: 1, state: RotationState.ROTATION_STATE_DONE });
    expect(r.finished).toBeDefined();
    const now = await get(name);
    expect(now).toMatchObject({ version: 2, stage: "current" });
    expect(text(now, "pw")).toBe("two");
    expect(text(now, "user")).toBe("app");
    expect(await codeOf(get(name, { stage: "previous" }))).toBe(status.NOT_FOUND);
    expect(await codeOf(get(name, { version: 1 }))).toBe(status.NOT_FOUND);
  });

  it("NEVER: the previous version stays readable by stage and number (GetSecret and a projection item) until the next rotation", async () => {
    const name = fresh("never");
    const c = await create(name);
    const r = await rotate(name, c.etag, { stringData: { pw: "two" }, retire: Retire.RETIRE_NEVER });
    expect(r).toMatchObject({ version: 2, previousVersion: 1, state: RotationState.ROTATION_STATE_DONE });
    const prev = await get(name, { stage: "previous" });
    expect(prev).toMatchObject({ version: 1, stage: "previous" });
    expect(text(prev, "pw")).toBe("one");
    expect((await get(name, { version: 1 })).stage).toBe("previous");
    // A dual-credential client projects both.
    const p = await s.call<Projection>(
      "projectSecrets",
      { mesh: MESH, items: [{ name, keys: [{ key: "pw", env: "PW" }] }, { name, stage: "previous", keys: [{ key: "pw", env: "PW_PREVIOUS", path: "previous/pw" }] }] },
      owner,
    );
    expect(Object.fromEntries(p.values.map((v) => [v.env, Buffer.from(v.value).toString()]))).toEqual({ PW: "two", PW_PREVIOUS: "one" });
    expect(p.sources.map((x) => x.version).sort()).toEqual([1, 2]);

    // The next rotation: version 2 becomes previous, version 1 is retired.
    const now = await get(name);
    const again = await rotate(name, now.etag, { stringData: { pw: "three" }, retire: Retire.RETIRE_NEVER });
    expect(again).toMatchObject({ version: 3, previousVersion: 2 });
    expect(text(await get(name, { stage: "previous" }), "pw")).toBe("two");
    expect(await codeOf(get(name, { version: 1 }))).toBe(status.NOT_FOUND);
  });

  it("a watch with an optional previous-stage item gets both versions, and drops the previous one when a rotation retires it", async () => {
    const name = fresh("watched-stages");
    const c = await create(name, { pw: "one" });
    await rotate(name, c.etag, { stringData: { pw: "two" }, retire: Retire.RETIRE_NEVER });
    const w = openWatch(
      s.client,
      { mesh: MESH, items: [{ name, keys: [{ key: "pw", env: "PW" }] }, { name, stage: "previous", optional: true, keys: [{ key: "pw", env: "PW_PREVIOUS", path: "previous/pw" }] }] },
      owner,
    );
    const env = (p: Projection): Record<string, string> => Object.fromEntries(p.values.map((v) => [v.env, Buffer.from(v.value).toString()]));
    expect(env(await w.next())).toEqual({ PW: "two", PW_PREVIOUS: "one" });
    const now = await get(name);
    await rotate(name, now.etag, { stringData: { pw: "three" }, retire: Retire.RETIRE_IMMEDIATE });
    expect(env(await w.next())).toEqual({ PW: "three" });
    w.cancel();
  });

  it("AFTER_ACK with no consumers converges: the driver retires the previous version and records DONE", async () => {
    const name = fresh("converges");
    const c = await create(name);
    const r = await rotate(name, c.etag, { stringData: { pw: "two" } });
    expect(r).toMatchObject({ version: 2, previousVersion: 1, consumers: 0, converged: true });
    await eventually(async () => (await rollout(name)).state === RotationState.ROTATION_STATE_DONE);
    const done = await rollout(name);
    expect(done.detail).toContain("version 1 retired");
    expect(await codeOf(get(name, { stage: "previous" }))).toBe(status.NOT_FOUND);
    expect(await codeOf(get(name, { version: 1 }))).toBe(status.NOT_FOUND);
  });

  it("AFTER_ACK with a watcher that never acks: previous stays readable until ack_timeout on the server's clock, then TIMED_OUT naming the consumer, and retired", async () => {
    const name = fresh("straggler");
    const c = await create(name);
    const { w } = await watcher(name);
    // 10 s: well inside the consumer lease's 25 s, which the same clock judges (moving it further would end the lease, and the rotation would converge).
    const r = await rotate(name, c.etag, { stringData: { pw: "two" }, ackTimeout: { seconds: 10, nanos: 0 } });
    expect(r).toMatchObject({ state: RotationState.ROTATION_STATE_WAITING_FOR_ACKS, consumers: 1, applied: 0, converged: false });
    expect(r.behind.map((b) => b.sub)).toEqual(["pete"]);
    // The watcher is sent the new version (it just never confirms it).
    expect(Buffer.from((await w.next()).values.find((v) => v.key === "pw")!.value).toString()).toBe("two");
    // Driver passes come and go; before the deadline nothing is retired.
    await new Promise((res) => setTimeout(res, 600));
    expect((await rollout(name)).state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
    expect(text(await get(name, { stage: "previous" }), "pw")).toBe("one");

    await s.clock.advance(10_000);
    await eventually(async () => (await rollout(name)).state === RotationState.ROTATION_STATE_TIMED_OUT);
    const out = await rollout(name);
    const replica = (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner)).consumers[0]?.replica ?? "";
    expect(replica).not.toBe("");
    expect(out.detail).toContain('sub "pete"');
    expect(out.detail).toContain(`consumer ${r.behind[0]!.consumerId} on ${replica}`);
    expect(out.finished).toBeDefined();
    expect(await codeOf(get(name, { stage: "previous" }))).toBe(status.NOT_FOUND);
    expect(await codeOf(get(name, { version: 1 }))).toBe(status.NOT_FOUND);
    // Retired anyway: the audit trail says the deadline passed.
    expect(await retirements(s, name)).toEqual([[1, "previous", "DEADLINE_EXCEEDED"]]);
    w.cancel();
  });

  it("AFTER_ACK: once the watcher acks the revision carrying the new version, the rotation converges and retires previous (no timeout)", async () => {
    const name = fresh("acked");
    const c = await create(name);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:ann", permission: Permission.PERMISSION_PROJECT }, owner);
    const tok = await s.token({ tenant: "acme", sub: "ann", roles: ["sidecar"] });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, tok);
    const first = await w.next();
    expect(first.consumerId).not.toBe("");
    await eventually(async () => (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner)).consumers.length === 1);
    const r = await rotate(name, c.etag, { stringData: { pw: "two" }, ackTimeout: { seconds: 3600, nanos: 0 } });
    expect(r).toMatchObject({ state: RotationState.ROTATION_STATE_WAITING_FOR_ACKS, consumers: 1, applied: 0 });
    // Acking the old revision applies nothing new: still waiting.
    await s.call("ackProjection", { consumerId: first.consumerId, revision: first.revision }, tok);
    const next = await w.next();
    expect(next.consumerId).toBe(first.consumerId);
    await new Promise((res) => setTimeout(res, 300));
    expect((await rollout(name)).state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
    expect(text(await get(name, { stage: "previous" }), "pw")).toBe("one");
    await s.call("ackProjection", { consumerId: next.consumerId, revision: next.revision }, tok);
    await eventually(async () => (await rollout(name)).state === RotationState.ROTATION_STATE_DONE);
    expect(await rollout(name)).toMatchObject({ consumers: 1, applied: 1, converged: true, behind: [] });
    expect(await codeOf(get(name, { stage: "previous" }))).toBe(status.NOT_FOUND);
    w.cancel();
  });

  it("generate: the server makes the value (length, alphabet, uniform rejection sampling) and its bytes reach no log line, audit event, record or database file", async () => {
    const name = fresh("generated");
    const c = await create(name);
    const r = await rotate(name, c.etag, { generate: [{ key: "pw", length: 48, alphabet: "abcdefgh" }], retire: Retire.RETIRE_IMMEDIATE });
    const value = text(await get(name), "pw");
    expect(value).toMatch(/^[a-h]{48}$/);
    const dflt = await rotate(name, (await get(name)).etag, { generate: [{ key: "token", length: 0, alphabet: "" }], retire: Retire.RETIRE_IMMEDIATE });
    const token = text(await get(name), "token");
    expect(token).toMatch(/^[A-Za-z0-9]{32}$/);

    await s.app.audit.flush();
    const admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
    const events = await s.call<ListAuditEventsResponse>("listAuditEvents", { name, pageSize: 1000 }, admin);
    const rotations = events.events.filter((e) => e.method === "RotateSecret");
    expect(rotations.map((e) => e.version)).toEqual([r.version, dflt.version]);
    expect(rotations[0]!.keys).toEqual(["pw"]);
    const everything = [JSON.stringify(events), JSON.stringify(r), JSON.stringify(dflt), JSON.stringify(await rollout(name)), ...s.logs].join("\n");
    for (const v of [value, token]) expect(everything).not.toContain(v);
    if (E2E_STORAGE !== "postgres") {
      // The SQLite files hold the values sealed only.
      for (const f of readdirSync(s.dataDir).filter((x) => x.startsWith("secretd.db"))) {
        const bytes = readFileSync(path.join(s.dataDir, f));
        for (const v of [value, token]) expect(bytes.includes(Buffer.from(v))).toBe(false);
      }
    }
  });
});

describe("faults", () => {
  it("immutable → FAILED_PRECONDITION; stale etag → ABORTED; no etag, no values, bad retire, bad generate, ack_timeout without AFTER_ACK → INVALID_ARGUMENT", async () => {
    const name = fresh("faults");
    const c = await create(name);
    const frozen = fresh("frozen");
    const f = await create(frozen, { pw: "x" }, { immutable: true });
    const imm = await errorOf(rotate(frozen, f.etag, { stringData: { pw: "y" } }));
    expect(imm.code).toBe(status.FAILED_PRECONDITION);
    expect(imm.details).toContain("immutable");
    expect(await codeOf(rotate(name, "stale-etag", { stringData: { pw: "y" } }))).toBe(status.ABORTED);
    const bad: object[] = [
      { etag: "", stringData: { pw: "y" } },
      {},
      { stringData: { pw: "y" }, retire: 7 },
      { generate: [{ key: "pw", length: 4, alphabet: "" }] },
      { generate: [{ key: "pw", length: 100_000, alphabet: "" }] },
      { generate: [{ key: "pw", length: 16, alphabet: "aa" }] },
      { generate: [{ key: "pw", length: 16, alphabet: "a b" }] },
      { generate: [{ key: "bad key!", length: 16, alphabet: "" }] },
      { stringData: { pw: "y" }, generate: [{ key: "pw", length: 16, alphabet: "" }] },
      { stringData: { pw: "y" }, retire: Retire.RETIRE_IMMEDIATE, ackTimeout: { seconds: 60, nanos: 0 } },
      { stringData: { pw: "y" }, ackTimeout: { seconds: -1, nanos: 0 } },
    ];
    for (const req of bad) expect({ req, code: await codeOf(rotate(name, c.etag, req)) }).toEqual({ req, code: status.INVALID_ARGUMENT });
    // Nothing of those changed the secret.
    expect((await get(name)).version).toBe(1);
  });

  it("WRITE-level: a READ grantee is PERMISSION_DENIED, a stranger NOT_FOUND", async () => {
    const name = fresh("access");
    const c = await create(name);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:rita", permission: Permission.PERMISSION_READ }, owner);
    const rita = await s.token({ tenant: "acme", sub: "rita", roles: [] });
    expect(await codeOf(rotate(name, c.etag, { stringData: { pw: "y" } }, rita))).toBe(status.PERMISSION_DENIED);
    const sam = await s.token({ tenant: "acme", sub: "sam", roles: ["data-developer"] });
    expect(await codeOf(rotate(name, c.etag, { stringData: { pw: "y" } }, sam))).toBe(status.NOT_FOUND);
    // A WRITE grantee rotates, and sees how many consume the secret but not who (that is ListConsumers', ADMIN).
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:wes", permission: Permission.PERMISSION_WRITE }, owner);
    const wes = await s.token({ tenant: "acme", sub: "wes", roles: [] });
    await watcher(name);
    const r = await rotate(name, c.etag, { stringData: { pw: "y" }, retire: Retire.RETIRE_NEVER }, wes);
    expect(r).toMatchObject({ version: 2, consumers: 1, behind: [] });
    expect(await codeOf(s.call("getRollout", { mesh: MESH, name }, wes))).toBe(status.PERMISSION_DENIED);
  });

  it("two rotations at once: one wins, the other is FAILED_PRECONDITION naming the running one", async () => {
    const name = fresh("twice");
    const c = await create(name);
    const { w } = await watcher(name);
    const first = await rotate(name, c.etag, { stringData: { pw: "two" }, ackTimeout: { seconds: 3600, nanos: 0 } });
    expect(first.state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
    const now = await get(name);
    const second = await errorOf(rotate(name, now.etag, { stringData: { pw: "three" } }));
    expect(second.code).toBe(status.FAILED_PRECONDITION);
    expect(second.details).toContain("rotation to version 2");
    expect(second.details).toContain("waiting_for_acks");
    // Racing on one etag: exactly one wins.
    const racer = fresh("race");
    const rc = await create(racer);
    await watcher(racer, "quinn");
    const outcomes = await Promise.allSettled([0, 1, 2].map((i) => rotate(racer, rc.etag, { stringData: { pw: `r${i}` }, ackTimeout: { seconds: 3600, nanos: 0 } })));
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(1);
    for (const o of outcomes) if (o.status === "rejected") expect([status.ABORTED, status.FAILED_PRECONDITION]).toContain((o.reason as ServiceError).code);
    expect((await get(racer)).version).toBe(2);
    w.cancel();
  });
});

describe("CLI", () => {
  it("secretd rotate --generate --retire immediate; rotate --from-literal --retire never, then get --stage previous -o yaml; --wait exits 0 when it converges", async () => {
    const name = fresh("cli");
    await create(name);
    const env = { SECRETD_SERVER: s.address, SECRETD_TOKEN: owner };
    const gen = await runCli(["rotate", name, "--mesh", MESH, "--generate", "pw:40", "--retire", "immediate"], { env });
    expect(gen.err).toBe("");
    expect(gen.status).toBe(0);
    expect(gen.out).toContain("state: done");
    expect(gen.out).toContain("version: 2");
    const value = text(await get(name), "pw");
    expect(value).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(gen.out + gen.err).not.toContain(value);

    const never = await runCli(["rotate", name, "--mesh", MESH, "--from-literal", "pw=lit3", "--retire", "never", "-o", "json"], { env });
    expect(never.status).toBe(0);
    expect(JSON.parse(never.out)).toMatchObject({ version: 3, previousVersion: 2, state: "done" });
    const prev = await runCli(["get", name, "--mesh", MESH, "--stage", "previous", "-o", "yaml"], { env });
    expect(prev.status).toBe(0);
    expect(prev.out).toContain("stage: previous");
    expect(prev.out).toContain("version: 2");
    const cur = await runCli(["get", name, "--mesh", MESH, "-o", "yaml"], { env });
    expect(cur.out).toContain("stage: current");

    const wait = await runCli(["rotate", name, "--mesh", MESH, "--from-literal", "pw=lit4", "--ack-timeout", "10m", "--wait", "-o", "json"], { env });
    expect(wait.err).toBe("");
    expect(wait.status).toBe(0);
    expect(JSON.parse(wait.out)).toMatchObject({ version: 4, state: "done", converged: true });

    const bad = await runCli(["rotate", name, "--mesh", MESH, "--from-literal", "pw=x", "--retire", "immediate", "--ack-timeout", "1m"], { env });
    expect(bad.status).toBe(2);
    const badGen = await runCli(["rotate", name, "--mesh", MESH, "--generate", "pw:abc"], { env });
    expect(badGen.status).toBe(2);
  }, 90_000); // seven CLI processes: each start costs seconds on a loaded box
});

describe("restart and workers", () => {
  it("a rotation recorded before a restart is finished by the restarted server (it resumes)", async () => {
    const a = await startTestServer();
    const tok = await a.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
    const name = "resumed";
    const c = await a.call<Secret>("createSecret", { mesh: MESH, name, stringData: { pw: "one" } }, tok);
    await a.call("grantAccess", { mesh: MESH, name, subject: "user:pete", permission: Permission.PERMISSION_PROJECT }, tok);
    const pete = await a.token({ tenant: "acme", sub: "pete", roles: ["sidecar"] });
    const w = openWatch(a.client, { mesh: MESH, items: [{ name }] }, pete);
    await w.next();
    await eventually(async () => (await a.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, tok)).consumers.length === 1);
    const r = await a.call<Rollout>("rotateSecret", { mesh: MESH, name, etag: c.etag, stringData: { pw: "two" }, ackTimeout: { seconds: 3600, nanos: 0 } }, tok);
    expect(r.state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
    const dataDir = a.dataDir;
    // Stopped mid-rotation, the watcher still connected: the close stops the driver before it ends the watches,
    // so this process never sees the rotation converge. (The data dir is kept for the restart.)
    a.client.close();
    await a.app.close(1000);
    w.cancel();
    expect(a.logs.some((l) => l.includes("rotation finished"))).toBe(false);

    const b = await startTestServer({ dataDir });
    try {
      const tokB = await b.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
      // The watcher is gone with the first process: the restarted one finds the rotation converged and finishes it.
      await eventually(async () => (await b.call<Rollout>("getRollout", { mesh: MESH, name }, tokB)).state === RotationState.ROTATION_STATE_DONE, 10_000);
      // Logged once the commit's changes are out, a moment after the record reads DONE.
      await eventually(() => b.logs.some((l) => l.includes("rotation finished")));
      expect(await codeOf(b.call("getSecret", { mesh: MESH, name, stage: "previous" }, tokB))).toBe(status.NOT_FOUND);
    } finally {
      await b.stop();
    }
  });

  it("with --workers 2 exactly one process drives a rotation: one 'rotation finished' line in all the workers' logs", async () => {
    const w = await startTestServer({ workers: "2" });
    try {
      const tok = await w.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
      const names = ["w1", "w2", "w3"];
      for (const name of names) {
        const c = await w.call<Secret>("createSecret", { mesh: MESH, name, stringData: { pw: "one" } }, tok);
        await w.call("rotateSecret", { mesh: MESH, name, etag: c.etag, stringData: { pw: "two" } }, tok);
      }
      for (const name of names) await eventually(async () => (await w.call<Rollout>("getRollout", { mesh: MESH, name }, tok)).state === RotationState.ROTATION_STATE_DONE, 10_000);
      await eventually(() => w.logs.filter((l) => l.includes("rotation finished")).length >= names.length);
      // Both workers' drivers look every 250 ms; give the other one time to (wrongly) finish it too.
      await new Promise((res) => setTimeout(res, 1000));
      expect(w.logs.filter((l) => l.includes("rotation finished"))).toHaveLength(names.length);
    } finally {
      await w.stop();
    }
  });
});

describe("exec rotator", () => {
  let x: TestServer;
  let tok: string;
  let dir: string;
  const decoded = (file: string): Record<string, string> =>
    Object.fromEntries(Object.entries((JSON.parse(readFileSync(path.join(dir, file), "utf8")) as { data: Record<string, string> }).data).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
  const flag = (name: string, on: boolean): void => {
    if (on) writeFileSync(path.join(dir, name), "");
    else rmSync(path.join(dir, name), { force: true });
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "secretd-rotator-"));
    // rotate|retire TENANT MESH NAME VERSION, the values on stdin: kept per action and version; "fail-<action>" / "hang" files steer it.
    const script = path.join(dir, "rotator.sh");
    writeFileSync(
      script,
      `#!/bin/sh\nD=${JSON.stringify(dir)}\n[ -f "$D/hang" ] && sleep 30\ncat > "$D/$1-$4-$5.json"\n[ -f "$D/fail-$1" ] && exit 3\nexit 0\n`,
      { mode: 0o755 },
    );
    x = await startTestServer({ rotatorExec: script, rotatorTimeout: "1s" });
    tok = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  });
  afterAll(async () => {
    await x.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const make = async (name: string): Promise<Secret> => x.call<Secret>("createSecret", { mesh: MESH, name, stringData: { user: "app", pw: "one" } }, tok);
  const roll = async (name: string): Promise<Rollout> => x.call<Rollout>("getRollout", { mesh: MESH, name }, tok);

  it("AFTER_ACK: the command accepts the new values before they are stored, and its retire hook gets the previous ones before they go", async () => {
    const c = await make("xa");
    const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "xa", etag: c.etag, stringData: { pw: "two" }, rotator: "exec" }, tok);
    expect(r.version).toBe(2);
    expect(decoded("rotate-xa-2.json")).toEqual({ user: "app", pw: "two" });
    await eventually(async () => (await roll("xa")).state === RotationState.ROTATION_STATE_DONE);
    expect((await roll("xa")).detail).toContain("exec retire hook ran");
    expect(decoded("retire-xa-1.json")).toEqual({ user: "app", pw: "one" });
  });

  it("IMMEDIATE with a rotator retires through the hook at once (RETIRING, then DONE)", async () => {
    const c = await make("xi");
    const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "xi", etag: c.etag, stringData: { pw: "two" }, rotator: "exec", retire: Retire.RETIRE_IMMEDIATE }, tok);
    expect(r.state).toBe(RotationState.ROTATION_STATE_RETIRING);
    await eventually(async () => (await roll("xi")).state === RotationState.ROTATION_STATE_DONE);
    expect(decoded("retire-xi-1.json")).toEqual({ user: "app", pw: "one" });
    expect(await codeOf(x.call("getSecret", { mesh: MESH, name: "xi", version: 1 }, tok))).toBe(status.NOT_FOUND);
  });

  it("a command that refuses (exit 3) or hangs (killed at --rotator-timeout) leaves the secret unchanged: FAILED_PRECONDITION, logged without a value", async () => {
    const c = await make("xf");
    flag("fail-rotate", true);
    try {
      const e = await errorOf(x.call("rotateSecret", { mesh: MESH, name: "xf", etag: c.etag, generate: [{ key: "pw", length: 24, alphabet: "" }], rotator: "exec" }, tok));
      expect(e.code).toBe(status.FAILED_PRECONDITION);
      expect(e.details).toContain("exited with status 3");
      expect(e.details).toContain("unchanged");
      const offered = decoded("rotate-xf-2.json").pw!;
      expect(offered).toMatch(/^[A-Za-z0-9]{24}$/);
      expect(x.logs.join("\n")).not.toContain(offered);
      expect(x.logs.some((l) => l.includes("the exec rotator refused") && l.includes("exited with status 3"))).toBe(true);
    } finally {
      flag("fail-rotate", false);
    }
    flag("hang", true);
    try {
      const e = await errorOf(x.call("rotateSecret", { mesh: MESH, name: "xf", etag: c.etag, stringData: { pw: "two" }, rotator: "exec" }, tok));
      expect(e.code).toBe(status.FAILED_PRECONDITION);
      expect(e.details).toContain("timed out after 1s");
    } finally {
      flag("hang", false);
    }
    const now = await x.call<Secret>("getSecret", { mesh: MESH, name: "xf" }, tok);
    expect(now.version).toBe(1);
    expect(text(now, "pw")).toBe("one");
    expect((await roll("xf")).state).toBe(RotationState.ROTATION_STATE_NONE);
  });

  it("a retire hook that fails is recorded (FAILED, the reason in the detail); the previous version is retired all the same", async () => {
    const c = await make("xh");
    flag("fail-retire", true);
    try {
      await x.call("rotateSecret", { mesh: MESH, name: "xh", etag: c.etag, stringData: { pw: "two" }, rotator: "exec" }, tok);
      await eventually(async () => (await roll("xh")).state === RotationState.ROTATION_STATE_FAILED);
      expect((await roll("xh")).detail).toContain("exec retire hook failed (exited with status 3)");
      expect(await codeOf(x.call("getSecret", { mesh: MESH, name: "xh", stage: "previous" }, tok))).toBe(status.NOT_FOUND);
      expect(await retirements(x, "xh")).toEqual([[1, "previous", "UNKNOWN"]]);
    } finally {
      flag("fail-retire", false);
    }
  });

  it("rotator exec on a server without one is FAILED_PRECONDITION; an unknown rotator INVALID_ARGUMENT", async () => {
    const name = fresh("norotator");
    const c = await create(name);
    expect(await codeOf(rotate(name, c.etag, { stringData: { pw: "two" }, rotator: "exec" }))).toBe(status.FAILED_PRECONDITION);
    expect(await codeOf(x.call("rotateSecret", { mesh: MESH, name: "xa", etag: "e", stringData: { pw: "two" }, rotator: "lambda" }, tok))).toBe(status.INVALID_ARGUMENT);
  });
});
