/**
 * Scheduled rotation (#30 item 5) through the real server: a policy in the secret's
 * annotations, validated on create/update/apply and shown back with the server's
 * rotation-next; the server's clock advanced past it rotates the secret once, as the
 * system principal secretd:scheduler (audited), exactly once with --workers 2; a failing
 * rotator is recorded (GetRollout) and not retried before its backoff; another tenant sees
 * nothing of it. SECRETD_E2E_STORAGE=postgres runs the same file on PostgreSQL.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RotationState, type ListAuditEventsResponse, type ListSecretsResponse, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { runCli } from "../helpers/cli.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "m";
const HOUR = 3_600_000;
let s: TestServer;
let owner: string;
let admin: string;
let seq = 0;
const fresh = (p: string): string => `${p}-${++seq}`;
const policy = (over: Record<string, string> = {}): Record<string, string> => ({
  "secretd.io/rotation-period": "1h",
  "secretd.io/rotation-generate": "pw:24",
  "secretd.io/rotation-retire": "never",
  ...over,
});

async function errorOf(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}

const create = (srv: TestServer, tok: string, name: string, annotations: Record<string, string>, extra: object = {}): Promise<Secret> =>
  srv.call<Secret>("createSecret", { mesh: MESH, name, stringData: { user: "app", pw: "one" }, annotations, ...extra }, tok);
const get = (srv: TestServer, tok: string, name: string, req: object = {}): Promise<Secret> => srv.call<Secret>("getSecret", { mesh: MESH, name, ...req }, tok);

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  admin = await s.token({ tenant: "acme", sub: "ada", roles: ["tenant-admin"] });
});

afterAll(async () => {
  await s.stop();
});

describe("rotation policy", () => {
  it("when a secret carries a policy, then Get, ListSecrets and get -o yaml show it with the server's rotation-next (creation + period)", async () => {
    const name = fresh("shown");
    const c = await create(s, owner, name, policy());
    const next = c.annotations["secretd.io/rotation-next"];
    expect(next).toBe(new Date(c.createTime!.getTime() + HOUR).toISOString());
    expect((await get(s, owner, name)).annotations).toMatchObject({ ...policy(), "secretd.io/rotation-next": next });
    const listed = await s.call<ListSecretsResponse>("listSecrets", { mesh: MESH }, owner);
    expect(listed.secrets.find((x) => x.name === name)?.annotations["secretd.io/rotation-next"]).toBe(next);
    const yaml = await runCli(["get", name, "--mesh", MESH, "-o", "yaml"], { env: { SECRETD_SERVER: s.address, SECRETD_TOKEN: owner } });
    expect(yaml.status).toBe(0);
    expect(yaml.out).toContain("secretd.io/rotation-period: 1h");
    expect(yaml.out).toContain("secretd.io/rotation-next:");
    // Sent back as shown, rotation-next is ignored (read-only), the policy kept.
    const u = await s.call<Secret>("updateSecret", { mesh: MESH, name, etag: c.etag, annotations: { ...c.annotations, "secretd.io/rotation-next": "2000-01-01T00:00:00.000Z", note: "x" }, updateMask: ["annotations"] }, owner);
    expect(u.annotations["secretd.io/rotation-next"]).toBe(next);
    expect(u.annotations.note).toBe("x");
  });

  it("when a policy is bad, then create, update and apply are INVALID_ARGUMENT naming the annotation; an immutable secret refuses a policy", async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [policy({ "secretd.io/rotation-period": "30s" }), "secretd.io/rotation-period"],
      [policy({ "secretd.io/rotation-period": "9000h" }), "secretd.io/rotation-period"],
      [policy({ "secretd.io/rotation-period": "soon" }), "secretd.io/rotation-period"],
      [policy({ "secretd.io/rotation-rotator": "lambda" }), "secretd.io/rotation-rotator"],
      [policy({ "secretd.io/rotation-retire": "later" }), "secretd.io/rotation-retire"],
      [policy({ "secretd.io/rotation-generate": "pw" }), "secretd.io/rotation-generate"],
      [policy({ "secretd.io/rotation-generate": "pw:4" }), "secretd.io/rotation-generate"],
      [policy({ "secretd.io/rotation-ack-timeout": "5m" }), "secretd.io/rotation-ack-timeout"],
      [{ "secretd.io/rotation-generate": "pw:24" }, "secretd.io/rotation-period"],
      [{ "secretd.io/rotation-period": "1h" }, "secretd.io/rotation-generate"],
      [{ "secretd.io/rotation-next": "x", "secretd.io/other": "y" }, "secretd.io/other"],
    ];
    for (const [annotations, named] of cases) {
      const e = await errorOf(create(s, owner, fresh("bad"), annotations));
      expect(e.code, named).toBe(status.INVALID_ARGUMENT);
      expect(e.details).toContain(named);
    }
    const imm = await errorOf(create(s, owner, fresh("imm"), policy(), { immutable: true }));
    expect(imm.code).toBe(status.INVALID_ARGUMENT);
    expect(imm.details).toContain("immutable");
    const name = fresh("upd");
    const c = await create(s, owner, name, {});
    const e = await errorOf(s.call("updateSecret", { mesh: MESH, name, etag: c.etag, annotations: policy({ "secretd.io/rotation-period": "1s" }) }, owner));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.details).toContain("secretd.io/rotation-period");

    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sched-"));
    try {
      const file = path.join(dir, "s.yaml");
      const doc = (period: string): string =>
        `apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\n  annotations:\n    secretd.io/rotation-period: "${period}"\n    secretd.io/rotation-generate: "pw:24"\nstringData:\n  pw: one\n`;
      writeFileSync(file, doc("10s"));
      const env = { SECRETD_SERVER: s.address, SECRETD_TOKEN: owner };
      const bad = await runCli(["apply", "-f", file, "--mesh", MESH], { env });
      expect(bad.status).not.toBe(0);
      expect(bad.err).toContain("secretd.io/rotation-period");
      writeFileSync(file, doc("2h"));
      const good = await runCli(["apply", "-f", file, "--mesh", MESH], { env });
      expect(good.err).toBe("");
      expect(good.status).toBe(0);
      expect((await get(s, owner, "applied")).annotations).toMatchObject({ "secretd.io/rotation-period": "2h", "secretd.io/rotation-generate": "pw:24" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the scheduler", () => {
  it("when the clock passes rotation-next, then the secret is rotated once by secretd:scheduler: a new generated version, previous stage, GetRollout record and audit event; next counts from that rotation", async () => {
    const name = fresh("due");
    const c = await create(s, owner, name, policy());
    await s.clock.advance(HOUR + 1000);
    await eventually(async () => (await get(s, owner, name)).version === 2, 10_000);
    const cur = await get(s, owner, name);
    expect(Buffer.from(cur.data.pw!).toString()).toMatch(/^[A-Za-z0-9]{24}$/);
    expect(Buffer.from(cur.data.user!).toString()).toBe("app");
    const prev = await get(s, owner, name, { stage: "previous" });
    expect(prev.version).toBe(1);
    expect(Buffer.from(prev.data.pw!).toString()).toBe("one");
    const r = await s.call<Rollout>("getRollout", { mesh: MESH, name }, owner);
    expect(r.state).toBe(RotationState.ROTATION_STATE_DONE);
    expect(r.previousVersion).toBe(1);
    const next = Date.parse(cur.annotations["secretd.io/rotation-next"]!);
    expect(next).toBe(r.started!.getTime() + HOUR);
    expect(next).toBeGreaterThan(c.createTime!.getTime() + HOUR);
    expect(cur.annotations["secretd.io/rotation-period"]).toBe("1h");
    await eventually(async () => {
      const ev = await s.call<ListAuditEventsResponse>("listAuditEvents", { mesh: MESH, name, sub: "secretd:scheduler" }, admin);
      return ev.events.some((e) => e.method === "RotateSecret" && e.version === 2 && e.code === "OK" && e.keys.join() === "pw");
    });
    // Several scheduler passes later it is still version 2: the due time was taken once.
    await new Promise((res) => setTimeout(res, 2500));
    expect((await get(s, owner, name)).version).toBe(2);
    expect(s.logs.filter((l) => l.includes("scheduled rotation done") && l.includes(`"${name}"`))).toHaveLength(1);
  });

  it("when another tenant looks, then it sees nothing of the secret, its schedule or the scheduler's events", async () => {
    const name = fresh("tenant");
    await create(s, owner, name, policy());
    await s.clock.advance(HOUR + 1000);
    await eventually(async () => (await get(s, owner, name)).version === 2, 10_000);
    const other = await s.token({ tenant: "globex", sub: "olivia", roles: ["data-developer", "tenant-admin"] });
    expect((await s.call<ListSecretsResponse>("listSecrets", { mesh: MESH }, other)).secrets).toEqual([]);
    expect((await errorOf(get(s, other, name))).code).toBe(status.NOT_FOUND);
    expect((await errorOf(s.call("getRollout", { mesh: MESH, name }, other))).code).toBe(status.NOT_FOUND);
    expect((await s.call<ListAuditEventsResponse>("listAuditEvents", { sub: "secretd:scheduler" }, other)).events).toEqual([]);
  });
});

describe("a failing scheduled rotation", () => {
  let x: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "secretd-sched-rotator-"));
    const script = path.join(dir, "rotator.sh");
    writeFileSync(script, "#!/bin/sh\ncat > /dev/null\nexit 3\n", { mode: 0o755 });
    x = await startTestServer({ rotatorExec: script, rotatorTimeout: "5s" });
  });
  afterAll(async () => {
    await x.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("when the rotator refuses, then the secret is unchanged, GetRollout records the failure and the audit its code, and it is retried only after its backoff", async () => {
    const tok = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
    const adm = await x.token({ tenant: "acme", sub: "ada", roles: ["tenant-admin"] });
    const name = fresh("fails");
    await create(x, tok, name, policy({ "secretd.io/rotation-rotator": "exec" }));
    await x.clock.advance(HOUR + 1000);
    await eventually(async () => (await x.call<Rollout>("getRollout", { mesh: MESH, name }, tok)).detail.includes("scheduled rotation failed 1 time(s)"), 10_000);
    const r = await x.call<Rollout>("getRollout", { mesh: MESH, name }, tok);
    expect(r.detail).toContain("exec rotator refused");
    expect(r.version).toBe(1);
    expect((await get(x, tok, name)).version).toBe(1);
    const codes = async (): Promise<string[]> => (await x.call<ListAuditEventsResponse>("listAuditEvents", { mesh: MESH, name, sub: "secretd:scheduler" }, adm)).events.map((e) => e.code);
    await eventually(async () => (await codes()).length > 0);
    expect(await codes()).toEqual(["FAILED_PRECONDITION"]);
    // Not before the backoff (1 minute): several passes later it failed once still; past it, twice.
    await new Promise((res) => setTimeout(res, 2500));
    expect((await x.call<Rollout>("getRollout", { mesh: MESH, name }, tok)).detail).toContain("failed 1 time(s)");
    await x.clock.advance(61_000);
    await eventually(async () => (await x.call<Rollout>("getRollout", { mesh: MESH, name }, tok)).detail.includes("failed 2 time(s)"), 10_000);
  });
});

describe("--workers 2", () => {
  it("when both workers' schedulers see the due secret, then exactly one rotates it (real clock: a 1m period)", async () => {
    const w = await startTestServer({ workers: "2" });
    try {
      const tok = await w.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
      const names = ["wa", "wb", "wc"];
      for (const name of names) await create(w, tok, name, policy({ "secretd.io/rotation-period": "1m" }));
      for (const name of names) await eventually(async () => (await get(w, tok, name)).version === 2, 90_000);
      // Both schedulers look every second; give the other one time to (wrongly) rotate too.
      await new Promise((res) => setTimeout(res, 3000));
      for (const name of names) expect((await get(w, tok, name)).version).toBe(2);
      expect(w.logs.filter((l) => l.includes("scheduled rotation done"))).toHaveLength(names.length);
    } finally {
      await w.stop();
    }
  }, 150_000);
});
