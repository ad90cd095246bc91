/**
 * The postgres rotator's faults (#30 item 6) through the real server and a throw-away
 * PostgreSQL target (password logins): the target unreachable (the admin secret pointing
 * at a closed port) leaves the rotation PENDING, retried with backoff and noted in
 * GetRollout ("retrying: … attempt N …"), the current value untouched and logging in,
 * until the target is back (DONE); an ALTER ROLE that hangs on a lock held from another
 * session is bounded by --rotator-timeout, recorded FAILED, the secret unchanged;
 * UpdateSecret / DeleteSecret / RotateSecret while PENDING are FAILED_PRECONDITION
 * naming the running rotation; `secretd rotate --wait` follows a PENDING rotation to
 * DONE (exit 0) or to its discard at ack_timeout (exit 1). No password reaches a log
 * line, an error, the audit trail or a rotation record. SECRETD_E2E_STORAGE=postgres runs
 * the server on PostgreSQL storage (the target is always its own cluster).
 */
import pg from "pg";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../scripts/free-port.mjs";
import { Retire, RotationState, type ListAuditEventsResponse, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { runCli } from "../helpers/cli.js";
import { callError } from "../helpers/errors.js";
import { startPostgres, type PostgresCluster, logsIn as pgLogsIn, createAlternatingRoles, adminSecretData } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "m";
const ROLES = "rotator.secretd.io/postgres-roles";
const ADMIN = "rotator.secretd.io/postgres-admin-secret";

describe("postgres rotator: bad input and faults", () => {
  let cluster: PostgresCluster;
  let x: TestServer;
  let tok: string;
  let closedPort: number;
  /** Every password the test saw or set: none may appear in a log line, error, audit event or record. */
  const passwords = new Set<string>();
  const text = (s: Secret, k: string): string => Buffer.from(s.data[k] ?? []).toString();
  const admin = (): pg.Client => {
    const c = new pg.Client({ connectionString: cluster.url });
    c.on("error", () => undefined);
    return c;
  };
  const logsIn = (user: string, password: string): Promise<boolean> => pgLogsIn(cluster.port, user, password);
  const get = (name: string): Promise<Secret> => x.call<Secret>("getSecret", { mesh: MESH, name }, tok);
  const rollout = (name: string, version = 0): Promise<Rollout> => x.call<Rollout>("getRollout", { mesh: MESH, name, version }, tok);
  /** The stored current username/password logs in to the target. */
  const currentLogsIn = async (name: string): Promise<boolean> => {
    const s = await get(name);
    passwords.add(text(s, "password"));
    return logsIn(text(s, "username"), text(s, "password"));
  };
  const pendingPassword = async (name: string): Promise<void> => {
    passwords.add(text(await x.call<Secret>("getSecret", { mesh: MESH, name, stage: "pending" }, tok), "password"));
  };
  const adminData = (up: boolean): Record<string, string> => adminSecretData(up ? cluster.port : closedPort);
  /** An admin secret `name` to the target, or to a closed port (the target down). */
  const adminSecret = (name: string, up: boolean): Promise<Secret> => x.call<Secret>("createSecret", { mesh: MESH, name, stringData: adminData(up) }, tok);
  /** The target back: the admin secret points at it. */
  const targetUp = async (name: string): Promise<void> => {
    const a = await get(name);
    await x.call("updateSecret", { mesh: MESH, name, etag: a.etag, stringData: adminData(true) }, tok);
  };
  /** A secret rotated by the postgres rotator between roles `<p>_a` (current, LOGIN) and `<p>_b` (NOLOGIN). */
  const dbSecret = async (name: string, prefix: string, adminName: string): Promise<Secret> => {
    const initial = `initial-${prefix}-pw`;
    passwords.add(initial);
    await createAlternatingRoles(cluster.url, prefix, initial);
    return x.call<Secret>("createSecret", { mesh: MESH, name, stringData: { username: `${prefix}_a`, password: initial }, annotations: { [ROLES]: `${prefix}_a,${prefix}_b`, [ADMIN]: adminName } }, tok);
  };

  beforeAll(async () => {
    cluster = await startPostgres({ passwords: true });
    closedPort = await freePort();
    // A short bound, so a hanging ALTER ROLE ends quickly; plenty for a loopback target.
    x = await startTestServer({ rotatorTimeout: "3s" });
    tok = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  }, 60_000);
  afterAll(async () => {
    await x?.stop();
    cluster?.stop();
  });

  it("the target unreachable: RotateSecret answers PENDING, the step is retried with backoff (GetRollout: retrying, attempt N), the current value untouched and logging in; once the target is back the rotation completes DONE", async () => {
    await adminSecret("admin-down", false);
    const s = await dbSecret("down", "down", "admin-down");
    const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "down", etag: s.etag, rotator: "postgres", retire: Retire.RETIRE_AFTER_ACK }, tok);
    expect(r.state).toBe(RotationState.ROTATION_STATE_PENDING);
    expect(r.version).toBe(2);
    expect(r.detail).toContain("retrying");
    expect(r.detail).toContain("attempt 1");
    expect(r.detail).toContain("unreachable (ECONNREFUSED)");
    await pendingPassword("down");
    // The note is stored: GetRollout (the latest, and version 2 by number) tells it.
    const first = await rollout("down");
    expect(first).toMatchObject({ version: 2, state: RotationState.ROTATION_STATE_PENDING, previousVersion: 1 });
    // Nobody watches, yet a version no consumer could have been sent has not converged.
    expect(first).toMatchObject({ consumers: 0, converged: false });
    expect(first.detail).toMatch(/^retrying: .*attempt 1: the PostgreSQL target is unreachable \(ECONNREFUSED\)\); next attempt at \d{4}-.*the current version is unchanged$/);
    expect((await rollout("down", 2)).detail).toBe(first.detail);
    // Past the backoff (1 s, then 2 s) on the server's clock: attempts 2 and 3, still PENDING.
    for (const attempt of [2, 3]) {
      await x.clock.advance(60_000);
      await eventually(async () => (await rollout("down")).detail.includes(`attempt ${attempt}:`), 10_000);
      expect((await rollout("down")).state).toBe(RotationState.ROTATION_STATE_PENDING);
      const current = await get("down");
      expect(current.version).toBe(1);
      expect(text(current, "username")).toBe("down_a");
      expect(await currentLogsIn("down")).toBe(true);
      expect(await logsIn("down_b", [...passwords].at(-1)!)).toBe(false);
    }
    // The target back: the next attempt rotates.
    await targetUp("admin-down");
    await x.clock.advance(60_000);
    await eventually(async () => (await rollout("down")).state === RotationState.ROTATION_STATE_DONE, 15_000);
    const done = await get("down");
    expect(done.version).toBe(2);
    expect(text(done, "username")).toBe("down_b");
    expect(await currentLogsIn("down")).toBe(true);
    // Retired: the previous role may not log in any more.
    expect(await logsIn("down_a", "initial-down-pw")).toBe(false);
    expect(x.logs.some((l) => l.includes("failed transiently") && l.includes("ECONNREFUSED"))).toBe(true);
  }, 60_000);

  it("an ALTER ROLE that hangs (the role locked by another session's open transaction) is bounded by --rotator-timeout: FAILED_PRECONDITION, recorded FAILED, the secret unchanged", async () => {
    await adminSecret("admin-hang", true);
    const s = await dbSecret("hang", "hang", "admin-hang");
    const holder = admin();
    await holder.connect();
    try {
      // The rotator's ALTER ROLE hang_b waits for this transaction's update of the same role.
      await holder.query("BEGIN");
      await holder.query("ALTER ROLE hang_b WITH PASSWORD 'held-by-the-test'");
      const err = await callError(x.call("rotateSecret", { mesh: MESH, name: "hang", etag: s.etag, rotator: "postgres", retire: Retire.RETIRE_IMMEDIATE }, tok));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(err.details).toContain("exceeded --rotator-timeout");
      expect(err.details).toContain("the secret is unchanged");
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await holder.end();
    }
    const rec = await rollout("hang", 2);
    expect(rec.state).toBe(RotationState.ROTATION_STATE_FAILED);
    expect(rec.detail).toContain("exceeded --rotator-timeout");
    expect((await rollout("hang")).version).toBe(1);
    const current = await get("hang");
    expect(current.version).toBe(1);
    expect(text(current, "username")).toBe("hang_a");
    expect(await currentLogsIn("hang")).toBe(true);
    // A new rotation goes through once the lock is gone.
    const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "hang", etag: current.etag, rotator: "postgres", retire: Retire.RETIRE_IMMEDIATE }, tok);
    expect(r.version).toBe(2);
    await eventually(async () => (await rollout("hang")).state === RotationState.ROTATION_STATE_DONE, 10_000);
    expect(await currentLogsIn("hang")).toBe(true);
  }, 60_000);

  it("while a rotation is PENDING: UpdateSecret, DeleteSecret and another RotateSecret are FAILED_PRECONDITION naming it (never INTERNAL); an immutable secret and a stale etag are refused before any rotator runs", async () => {
    await adminSecret("admin-busy", false);
    const s = await dbSecret("busy", "busy", "admin-busy");
    const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "busy", etag: s.etag, rotator: "postgres" }, tok);
    expect(r.state).toBe(RotationState.ROTATION_STATE_PENDING);
    await pendingPassword("busy");
    const refusals = [
      await callError(x.call("updateSecret", { mesh: MESH, name: "busy", etag: s.etag, stringData: { note: "x" } }, tok)),
      await callError(x.call("deleteSecret", { mesh: MESH, name: "busy", etag: s.etag }, tok)),
      await callError(x.call("deleteSecret", { mesh: MESH, name: "busy", force: true }, tok)),
      await callError(x.call("rotateSecret", { mesh: MESH, name: "busy", etag: s.etag, rotator: "postgres" }, tok)),
      await callError(x.call("rotateSecret", { mesh: MESH, name: "busy", etag: s.etag, stringData: { note: "y" } }, tok)),
    ];
    for (const e of refusals) {
      expect(e.code).toBe(status.FAILED_PRECONDITION);
      expect(e.details).toContain('secret "busy"');
      expect(e.details).toContain("the rotation to version 2 (from version 1");
      expect(e.details).toContain("state pending");
    }
    expect(refusals[0]!.details).toContain("cannot be updated");
    expect(refusals[1]!.details).toContain("cannot be deleted");
    expect(refusals[3]!.details).toContain("already being rotated");
    expect((await get("busy")).version).toBe(1);
    expect(await currentLogsIn("busy")).toBe(true);

    // Refused before the rotator: nothing recorded, no role touched.
    const frozen = await x.call<Secret>("createSecret", { mesh: MESH, name: "frozen", immutable: true, stringData: { username: "down_a", password: "p" }, annotations: { [ROLES]: "down_a,down_b", [ADMIN]: "admin-down" } }, tok);
    const imm = await callError(x.call("rotateSecret", { mesh: MESH, name: "frozen", etag: frozen.etag, rotator: "postgres" }, tok));
    expect(imm.code).toBe(status.FAILED_PRECONDITION);
    expect(imm.details).toContain("immutable");
    const stale = await callError(x.call("rotateSecret", { mesh: MESH, name: "hang", etag: "stale-etag", rotator: "postgres" }, tok));
    expect(stale.code).toBe(status.ABORTED);
    expect((await rollout("frozen")).state).toBe(RotationState.ROTATION_STATE_NONE);
    for (const e of [...refusals, imm, stale]) for (const pw of passwords) expect(e.details).not.toContain(pw);
  }, 60_000);

  it("secretd rotate --wait follows a PENDING rotation: exit 0 once DONE; exit 1 when it is discarded at ack_timeout (FAILED)", async () => {
    const env = { SECRETD_SERVER: x.address, SECRETD_TOKEN: tok };
    await adminSecret("admin-cli", false);
    await dbSecret("cli", "cli", "admin-cli");
    const run = runCli(["rotate", "cli", "--mesh", MESH, "--rotator", "postgres", "--retire", "immediate", "--wait", "-o", "json"], { env });
    let exited = false;
    void run.then(() => (exited = true));
    await eventually(async () => {
      try {
        return (await rollout("cli")).detail.includes("attempt 1:");
      } catch {
        return false;
      }
    }, 30_000);
    await pendingPassword("cli");
    // Past attempt 2 still waiting: the CLI did not stop at PENDING.
    await x.clock.advance(60_000);
    await eventually(async () => (await rollout("cli")).detail.includes("attempt 2:"), 10_000);
    expect(exited).toBe(false);
    await targetUp("admin-cli");
    await x.clock.advance(60_000);
    const ok = await run;
    expect(ok.err).toBe("");
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ name: "cli", version: 2, state: "done" });
    expect(await currentLogsIn("cli")).toBe(true);

    // The target down until ack_timeout: the step is discarded, the CLI exits 1.
    await adminSecret("admin-cli2", false);
    await dbSecret("cli2", "clitwo", "admin-cli2");
    const run2 = runCli(["rotate", "cli2", "--mesh", MESH, "--rotator", "postgres", "--ack-timeout", "1m", "--wait", "-o", "json"], { env });
    await eventually(async () => {
      try {
        return (await rollout("cli2")).state === RotationState.ROTATION_STATE_PENDING;
      } catch {
        return false;
      }
    }, 30_000);
    await pendingPassword("cli2");
    await x.clock.advance(120_000);
    const failed = await run2;
    expect(failed.status).toBe(1);
    const out = JSON.parse(failed.out) as { state: string; detail: string };
    expect(out.state).toBe("failed");
    expect(out.detail).toContain("did not succeed within ack_timeout");
    expect((await get("cli2")).version).toBe(1);
    expect(await currentLogsIn("cli2")).toBe(true);
    for (const pw of passwords) expect(ok.out + ok.err + failed.out + failed.err).not.toContain(pw);
  }, 90_000);

  it("no password reaches a log line, the audit trail or a rotation record", async () => {
    expect(passwords.size).toBeGreaterThan(8);
    const logs = x.logs.join("\n");
    const audit = await x.call<ListAuditEventsResponse>("listAuditEvents", { pageSize: 1000 }, await x.token({ tenant: "acme", sub: "root", roles: ["tenant-admin"] }));
    expect(audit.events.length).toBeGreaterThan(10);
    const trail = JSON.stringify(audit.events);
    const records = JSON.stringify(await Promise.all(["down", "hang", "busy", "cli", "cli2"].flatMap((n) => [rollout(n, 1).catch(() => undefined), rollout(n, 2)])));
    for (const pw of passwords) {
      expect(logs).not.toContain(pw);
      expect(trail).not.toContain(pw);
      expect(records).not.toContain(pw);
    }
  });
});
