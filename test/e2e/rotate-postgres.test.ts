/**
 * The built-in PostgreSQL rotator (#30 item 5) against a throw-away PostgreSQL cluster
 * (password logins for every role but the postgres superuser): alternating users, the
 * previous role NOLOGIN once retired, the stored current always logs in; bad config and
 * a cross-tenant admin secret refused; no password in any log line.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, Retire, RotationState, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { startPostgres, type PostgresCluster, logsIn as pgLogsIn, adminSecretData, createAlternatingRoles } from "../helpers/postgres.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "m";
const ROLES = "rotator.secretd.io/postgres-roles";
const ADMIN = "rotator.secretd.io/postgres-admin-secret";

describe("postgres rotator", () => {
  let cluster: PostgresCluster;
  let x: TestServer;
  let tok: string;
  const text = (s: Secret, k: string): string => Buffer.from(s.data[k] ?? []).toString();
  const logsIn = (user: string, password: string): Promise<boolean> => pgLogsIn(cluster.port, user, password);

  beforeAll(async () => {
    cluster = await startPostgres({ passwords: true });
    await createAlternatingRoles(cluster.url, "app", "initial-a");
    x = await startTestServer({ rotatorTimeout: "5s" });
    tok = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
    await x.call("createSecret", { mesh: MESH, name: "pgadmin", stringData: adminSecretData(cluster.port) }, tok);
  }, 60_000);
  afterAll(async () => {
    await x?.stop();
    cluster?.stop();
  });

  it("alternates the two roles: the other role gets a fresh password, the previous one is NOLOGIN once retired, the current always logs in", async () => {
    let s = await x.call<Secret>(
      "createSecret",
      { mesh: MESH, name: "db", stringData: { host: "127.0.0.1", dbname: "postgres", username: "app_a", password: "initial-a" }, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin" } },
      tok,
    );
    const seen: string[] = [];
    for (const [i, user] of ["app_b", "app_a", "app_b"].entries()) {
      const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "db", etag: s.etag, rotator: "postgres", retire: i === 1 ? Retire.RETIRE_AFTER_ACK : Retire.RETIRE_IMMEDIATE }, tok);
      expect(r.version).toBe(i + 2);
      await eventually(async () => (await x.call<Rollout>("getRollout", { mesh: MESH, name: "db" }, tok)).state === RotationState.ROTATION_STATE_DONE, 10_000);
      s = await x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, tok);
      expect(text(s, "username")).toBe(user);
      expect(text(s, "host")).toBe("127.0.0.1");
      const pw = text(s, "password");
      expect(pw).toMatch(/^[A-Za-z0-9]{32}$/);
      seen.push(pw);
      expect(await logsIn(user, pw)).toBe(true);
      expect(await logsIn(user === "app_a" ? "app_b" : "app_a", i === 0 ? "initial-a" : seen[i - 1]!)).toBe(false);
    }
    for (const pw of seen) expect(x.logs.join("\n")).not.toContain(pw);
  }, 60_000);

  it("a rotation policy with the postgres rotator (no rotation-generate) is rotated by the scheduler when due: the other role, a fresh password that logs in", async () => {
    const policy = { "secretd.io/rotation-period": "1h", "secretd.io/rotation-rotator": "postgres", "secretd.io/rotation-retire": "immediate" };
    expect(await codeOf(x.call("createSecret", { mesh: MESH, name: "sched-bad", stringData: { username: "app_a", password: "initial-a" }, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin", ...policy, "secretd.io/rotation-generate": "password:32" } }, tok))).toBe(status.INVALID_ARGUMENT);
    const before = await x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, tok);
    const user = text(before, "username");
    // WRITE on db is not enough: the policy has the server use pgadmin, which the writer must be able to READ.
    await x.call("grantAccess", { mesh: MESH, name: "db", subject: "user:wendy", permission: Permission.PERMISSION_WRITE }, tok);
    const wendy = await x.token({ tenant: "acme", sub: "wendy", roles: [] });
    const policyByWendy = x.call("updateSecret", { mesh: MESH, name: "db", etag: before.etag, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin", ...policy } }, wendy);
    expect(await codeOf(policyByWendy)).toBe(status.NOT_FOUND);
    const s = await x.call<Secret>("updateSecret", { mesh: MESH, name: "db", etag: before.etag, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin", ...policy } }, tok);
    expect(s.annotations["secretd.io/rotation-next"]).toMatch(/^\d{4}-/);
    await x.clock.advance(3_600_000 + 1000);
    await eventually(async () => (await x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, tok)).version > s.version, 15_000);
    await eventually(async () => (await x.call<Rollout>("getRollout", { mesh: MESH, name: "db" }, tok)).state === RotationState.ROTATION_STATE_DONE, 15_000);
    const after = await x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, tok);
    const other = user === "app_a" ? "app_b" : "app_a";
    expect(text(after, "username")).toBe(other);
    expect(await logsIn(other, text(after, "password"))).toBe(true);
    expect(await logsIn(user, text(before, "password"))).toBe(false); // retired: NOLOGIN
    expect(x.logs.join("\n")).not.toContain(text(after, "password"));
  }, 60_000);

  it("refuses bad configuration (INVALID_ARGUMENT), given credentials, and an admin secret of another tenant", async () => {
    expect(await codeOf(x.call("createSecret", { mesh: MESH, name: "bad", stringData: { username: "app_a" }, annotations: { [ROLES]: "app_a" } }, tok))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(x.call("createSecret", { mesh: MESH, name: "bad", stringData: { username: "app_a" }, annotations: { "rotator.secretd.io/other": "x" } }, tok))).toBe(status.INVALID_ARGUMENT);
    const plain = await x.call<Secret>("createSecret", { mesh: MESH, name: "plain", stringData: { username: "app_a", password: "p" } }, tok);
    expect(await codeOf(x.call("rotateSecret", { mesh: MESH, name: "plain", etag: plain.etag, rotator: "postgres" }, tok))).toBe(status.INVALID_ARGUMENT);
    const other = await x.token({ tenant: "globex", sub: "gus", roles: ["data-developer"] });
    const g = await x.call<Secret>("createSecret", { mesh: MESH, name: "db", stringData: { username: "app_a", password: "p" }, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin" } }, other);
    expect(await codeOf(x.call("rotateSecret", { mesh: MESH, name: "db", etag: g.etag, rotator: "postgres", stringData: { password: "x" } }, other))).toBe(status.INVALID_ARGUMENT);
    expect(await codeOf(x.call("rotateSecret", { mesh: MESH, name: "db", etag: g.etag, rotator: "postgres" }, other))).toBe(status.NOT_FOUND);
    expect((await x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, other)).version).toBe(1);
  });
});
