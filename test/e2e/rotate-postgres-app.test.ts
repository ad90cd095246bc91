/**
 * #30 item 5's proof, end to end: a real `secretd sidecar` process projects a PostgreSQL
 * secret's username/password into a directory; an application loop in this test keeps
 * connections to a throw-away PostgreSQL cluster busy and reconnects with whatever the
 * sidecar's files say at that moment (both read through one `..data` target, so never a
 * username of one set with the password of another). Under that load the built-in
 * `postgres` rotator alternates the roles 20 times with retire AFTER_ACK, the sidecar
 * paused (SIGSTOP) now and then so the retire has to wait for its ack: zero failed connects
 * or queries, and after each rotation the previous role is NOLOGIN. (A connect the files
 * changed under, read just before the swap and refused after the retire, is counted apart
 * as stale and retried: see LoopStats.staleConnects.) The control, retire
 * IMMEDIATE with the sidecar paused the same way, does make the loop's connects fail
 * (28000/28P01), so the loop can see an outage. A second consumer that never acks keeps
 * the old role usable until ack_timeout (on the server's clock), then the rotation is
 * TIMED_OUT naming it. No password reaches a server or sidecar log line.
 */
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, Retire, RotationState, type Projection, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { startCli, waitFor, type CliProcess } from "../helpers/cli-process.js";
import { startPostgres, type PostgresCluster, logsIn as pgLogsIn, adminSecretData, createAlternatingRoles } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

const MESH = "m";
const ROLES = "rotator.secretd.io/postgres-roles";
const ADMIN = "rotator.secretd.io/postgres-admin-secret";
const SLOW = 90_000;
/** PostgreSQL's "role is not permitted to log in" and "password authentication failed". */
const AUTH_FAILURES = new Set(["28000", "28P01"]);
const CONNECTIONS = 4;

interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** Credentials as the files said them, and the set (`..data`'s target) they were read from. */
interface Read extends Credentials {
  readonly set: string;
}

interface LoopStats {
  connects: number;
  queries: number;
  /** Connects refused with the credentials the files still say: an outage. */
  failedConnects: Array<{ user: string; code: string }>;
  /**
   * Connects refused with credentials the sidecar replaced while the connect was in flight
   * (`..data` points at another set by the time the login failed): the application read the
   * files just before the swap, and the retire, which follows the sidecar's ack of that
   * swap, came before its login did. It reconnects with what the files say now.
   */
  staleConnects: Array<{ user: string; code: string }>;
  failedQueries: Array<{ user: string; code: string }>;
  byUser: Map<string, number>;
  /** The longest time from reading the files to a connection logged in (ms): the window an in-flight connect uses old credentials. */
  slowestConnectMs: number;
}

let cluster: PostgresCluster;
let x: TestServer;
let owner: string;
let work: string;
let dir: string;
let sidecar: CliProcess;
/** Every password the roles ever had: none may show in a log line. */
const passwords = new Set<string>(["initial-a"]);

const text = (s: Secret, k: string): string => Buffer.from(s.data[k] ?? []).toString();
const getSecret = (): Promise<Secret> => x.call<Secret>("getSecret", { mesh: MESH, name: "db" }, owner);
const rollout = (version = 0): Promise<Rollout> => x.call<Rollout>("getRollout", { mesh: MESH, name: "db", version }, owner);
const codeOfPg = (e: unknown): string => String((e as { code?: unknown }).code ?? (e instanceof Error ? e.message : e));

const currentSet = (): string => readlinkSync(path.join(dir, "..data"));

/** What the sidecar's files say now: both files read from the one set `..data` points at. */
function filesSay(): Read {
  for (;;) {
    const set = currentSet();
    try {
      return { set, user: readFileSync(path.join(dir, set, "username"), "utf8"), password: readFileSync(path.join(dir, set, "password"), "utf8") };
    } catch (e) {
      // The sidecar removed that set after swapping in the next one: read the new link.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }
}

function client(c: Credentials): pg.Client {
  const cl = new pg.Client({ host: "127.0.0.1", port: cluster.port, database: "postgres", user: c.user, password: c.password, connectionTimeoutMillis: 10_000 });
  cl.on("error", () => undefined);
  return cl;
}

function logsIn(c: Credentials): Promise<boolean> {
  return pgLogsIn(cluster.port, c.user, c.password);
}

async function canLogin(role: string): Promise<boolean> {
  const cl = new pg.Client({ connectionString: cluster.url });
  await cl.connect();
  try {
    return (await cl.query<{ rolcanlogin: boolean }>("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", [role])).rows[0]!.rolcanlogin;
  } finally {
    await cl.end();
  }
}

/**
 * The application: CONNECTIONS connections each running queries back to back, and
 * reconnecting with what the files say every 150-400 ms, or at once after an auth failure.
 */
function startApplication(): { stats: LoopStats; stop: () => Promise<void> } {
  const stats: LoopStats = { connects: 0, queries: 0, failedConnects: [], staleConnects: [], failedQueries: [], byUser: new Map(), slowestConnectMs: 0 };
  let running = true;
  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const worker = async (): Promise<void> => {
    while (running) {
      const read = performance.now();
      const creds = filesSay();
      const cl = client(creds);
      try {
        await cl.connect();
        stats.slowestConnectMs = Math.max(stats.slowestConnectMs, performance.now() - read);
      } catch (e) {
        const code = codeOfPg(e);
        (AUTH_FAILURES.has(code) && currentSet() !== creds.set ? stats.staleConnects : stats.failedConnects).push({ user: creds.user, code });
        await cl.end().catch(() => undefined);
        await pause(20);
        continue;
      }
      stats.connects++;
      stats.byUser.set(creds.user, (stats.byUser.get(creds.user) ?? 0) + 1);
      const until = Date.now() + 150 + Math.random() * 250;
      while (running && Date.now() < until) {
        try {
          const r = await cl.query<{ u: string }>("SELECT current_user AS u, count(*) FROM pg_class");
          if (r.rows[0]?.u !== creds.user) throw Object.assign(new Error(`connected as ${r.rows[0]?.u}`), { code: "wrong-user" });
          stats.queries++;
        } catch (e) {
          stats.failedQueries.push({ user: creds.user, code: codeOfPg(e) });
          if (AUTH_FAILURES.has(codeOfPg(e))) break;
        }
        await pause(5);
      }
      await cl.end().catch(() => undefined);
    }
  };
  const workers = Array.from({ length: CONNECTIONS }, () => worker());
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

/** Rotates db with the postgres rotator; resolves the rollout once its state is final, and the old and new credentials. */
async function rotate(retire: Retire, ackTimeoutSec: number | undefined, whileWaiting?: (prev: Credentials, version: number) => Promise<void>): Promise<{ r: Rollout; prev: Credentials; next: Credentials }> {
  const before = await getSecret();
  const prev = { user: text(before, "username"), password: text(before, "password") };
  const started = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "db", etag: before.etag, rotator: "postgres", retire, ...(ackTimeoutSec === undefined ? {} : { ackTimeout: { seconds: ackTimeoutSec, nanos: 0 } }) }, owner);
  expect(started.version).toBe(before.version + 1);
  await whileWaiting?.(prev, started.version);
  const r = await waitFor(
    `rotation to version ${started.version} to end`,
    async () => {
      const o = await rollout(started.version);
      return o.state !== RotationState.ROTATION_STATE_PENDING && o.state !== RotationState.ROTATION_STATE_WAITING_FOR_ACKS && o.state !== RotationState.ROTATION_STATE_RETIRING ? o : undefined;
    },
    30_000,
  );
  const after = await getSecret();
  const next = { user: text(after, "username"), password: text(after, "password") };
  passwords.add(next.password);
  return { r, prev, next };
}

beforeAll(async () => {
  cluster = await startPostgres({ passwords: true });
  await createAlternatingRoles(cluster.url, "app", "initial-a");
  x = await startTestServer({ rotatorTimeout: "10s" });
  owner = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  await x.call("createSecret", { mesh: MESH, name: "pgadmin", stringData: adminSecretData(cluster.port) }, owner);
  await x.call("createSecret", { mesh: MESH, name: "db", stringData: { username: "app_a", password: "initial-a" }, annotations: { [ROLES]: "app_a,app_b", [ADMIN]: "pgadmin" } }, owner);

  work = mkdtempSync(path.join(os.tmpdir(), "secretd-rotapp-"));
  dir = path.join(work, "out");
  const projection = path.join(work, "projection.yaml");
  writeFileSync(projection, `mesh: ${MESH}\nitems:\n  - name: db\n    keys:\n      - { key: username, path: username }\n      - { key: password, path: password }\n`);
  const tokenFile = path.join(work, "token");
  writeFileSync(tokenFile, `${owner}\n`, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, SECRETD_SERVER: x.address };
  delete env.SECRETD_TOKEN;
  sidecar = startCli(["sidecar", "--dir", dir, "--projection", projection, "--token-file", tokenFile, "--max-backoff", "1s"], env);
  await waitFor("the sidecar's first ack", () => sidecar.logs().some((l) => l.msg === "acked"), 30_000);
  expect(filesSay()).toMatchObject({ user: "app_a", password: "initial-a" });
}, 60_000);

afterAll(async () => {
  if (sidecar !== undefined) {
    sidecar.child.kill("SIGCONT");
    await sidecar.stop("SIGKILL");
  }
  await x?.stop();
  cluster?.stop();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

describe("rotating a PostgreSQL password under an application's load", () => {
  it(
    "AFTER_ACK, 20 times, the sidecar paused every 5th: zero failed connects and queries, every rotation DONE, the previous role NOLOGIN after each",
    async () => {
      const app = startApplication();
      try {
        await waitFor("the application's first connects", () => app.stats.connects >= CONNECTIONS);
        for (let i = 1; i <= 20; i++) {
          const paused = i % 5 === 0;
          if (paused) sidecar.child.kill("SIGSTOP");
          const { r, prev, next } = await rotate(Retire.RETIRE_AFTER_ACK, 3600, async (old, version) => {
            if (!paused) return;
            // The sidecar cannot swap nor ack: the rotation waits, the old role keeps working for the application.
            const promoted = await waitFor("the new version current", async () => {
              const o = await rollout(version);
              return o.state === RotationState.ROTATION_STATE_PENDING ? undefined : o;
            });
            expect(promoted.state, promoted.detail).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
            const connectsBefore = app.stats.connects;
            await waitFor("reconnects while the sidecar is paused", () => app.stats.connects >= connectsBefore + 2 * CONNECTIONS || app.stats.failedConnects.length > 0);
            expect(app.stats.failedConnects).toEqual([]);
            const o = await rollout(version);
            expect(o.state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
            expect(o.behind.map((b) => b.sub)).toEqual(["olivia"]);
            expect(filesSay().user).toBe(old.user);
            expect(await logsIn(old)).toBe(true);
            sidecar.child.kill("SIGCONT");
          });
          expect(r.state, r.detail).toBe(RotationState.ROTATION_STATE_DONE);
          expect(r.detail).toContain("every live consumer (1) applied");
          expect(next.user).toBe(prev.user === "app_a" ? "app_b" : "app_a");
          expect(await canLogin(prev.user)).toBe(false);
          expect(await logsIn(prev)).toBe(false);
          expect(await logsIn(next)).toBe(true);
          // The application moved over: every connection reconnected as the new role, more than once.
          const asNext = app.stats.byUser.get(next.user) ?? 0;
          await waitFor(`the application's connects as ${next.user}`, () => (app.stats.byUser.get(next.user) ?? 0) >= asNext + 3 * CONNECTIONS);
        }
      } finally {
        await app.stop();
      }
      const s = app.stats;
      for (const f of s.staleConnects) expect(AUTH_FAILURES.has(f.code), f.code).toBe(true);
      expect({ failedConnects: s.failedConnects, failedQueries: s.failedQueries }).toEqual({ failedConnects: [], failedQueries: [] });
      expect(s.connects).toBeGreaterThanOrEqual(20 * 3 * CONNECTIONS);
      expect(s.queries).toBeGreaterThan(s.connects);
      // Both roles carried the load in turn.
      expect(s.byUser.get("app_a")).toBeGreaterThan(0);
      expect(s.byUser.get("app_b")).toBeGreaterThan(0);
      expect((await getSecret()).version).toBe(21);
      console.log(`rotate-postgres-app: ${s.connects} connects, ${s.queries} queries, 0 failed, ${s.staleConnects.length} stale (files swapped mid-connect) over 20 AFTER_ACK rotations; slowest files-read-to-login ${Math.round(s.slowestConnectMs)} ms`);
    },
    SLOW,
  );

  it(
    "the control: retire IMMEDIATE with the sidecar paused the same way, the application's connects fail with an auth error",
    async () => {
      const app = startApplication();
      let oldUser: string | undefined;
      try {
        await waitFor("the application's first connects", () => app.stats.connects >= CONNECTIONS);
        sidecar.child.kill("SIGSTOP");
        const { r, prev } = await rotate(Retire.RETIRE_IMMEDIATE, undefined);
        oldUser = prev.user;
        expect(r.state, r.detail).toBe(RotationState.ROTATION_STATE_DONE);
        expect(await canLogin(prev.user)).toBe(false);
        await waitFor("a failed connect", () => app.stats.failedConnects.length > 0);
        sidecar.child.kill("SIGCONT");
        await waitFor("the sidecar's files of the new version", () => filesSay().user !== prev.user);
        expect((await getSecret()).version).toBe(22);
      } finally {
        sidecar.child.kill("SIGCONT");
        await app.stop();
      }
      const failed = app.stats.failedConnects;
      expect(failed.length).toBeGreaterThan(0);
      for (const f of failed) expect(AUTH_FAILURES.has(f.code), f.code).toBe(true);
      // Refused: the role the paused sidecar's files still named.
      expect(new Set(failed.map((f) => f.user))).toEqual(new Set([oldUser]));
    },
    SLOW,
  );
});

describe("a straggler that never acks", () => {
  it(
    "keeps the old role usable until ack_timeout on the server's clock, then the rotation is TIMED_OUT naming it, the old role NOLOGIN and the new current logs in",
    async () => {
      await x.call("grantAccess", { mesh: MESH, name: "db", subject: "user:stan", permission: Permission.PERMISSION_PROJECT }, owner);
      const stan = await x.token({ tenant: "acme", sub: "stan", roles: ["sidecar"] });
      const w = openWatch(x.client, { mesh: MESH, items: [{ name: "db" }] }, stan);
      try {
        const first: Projection = await w.next();
        expect(first.consumerId).not.toBe("");
        await waitFor("two live consumers", async () => (await rollout()).consumers === 2);
        const before = await getSecret();
        const prev = { user: text(before, "username"), password: text(before, "password") };
        const started = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "db", etag: before.etag, rotator: "postgres", retire: Retire.RETIRE_AFTER_ACK, ackTimeout: { seconds: 5, nanos: 0 } }, owner);
        // The sidecar applies and acks the new version; the straggler is sent it and never confirms.
        await waitFor("the sidecar's ack of the new version", async () => {
          const o = await rollout(started.version);
          return o.state === RotationState.ROTATION_STATE_WAITING_FOR_ACKS && o.applied === 1 && o.consumers === 2;
        });
        const sent = await w.next();
        expect(sent.sources.map((s) => s.version)).toEqual([started.version]);
        const next = { user: text(await getSecret(), "username"), password: text(await getSecret(), "password") };
        passwords.add(next.password);
        expect(filesSay()).toMatchObject(next);
        // Before the timeout: still waiting on stan alone, and the old role still logs in.
        const waiting = await rollout(started.version);
        expect(waiting.state).toBe(RotationState.ROTATION_STATE_WAITING_FOR_ACKS);
        expect(waiting.behind.map((b) => [b.sub, b.consumerId])).toEqual([["stan", first.consumerId]]);
        expect(await canLogin(prev.user)).toBe(true);
        expect(await logsIn(prev)).toBe(true);
        expect(await logsIn(next)).toBe(true);

        await x.clock.advance(5_000);
        const out = await waitFor("the rotation to time out", async () => {
          const o = await rollout(started.version);
          return o.state === RotationState.ROTATION_STATE_TIMED_OUT ? o : undefined;
        });
        expect(out.version).toBe(started.version);
        expect(out.detail).toContain("ack_timeout (5s) passed");
        expect(out.detail).toContain(`sub "stan" (consumer ${first.consumerId} on `);
        expect(out.detail).toContain("postgres retire hook ran");
        expect(out.detail).not.toContain("olivia");
        expect(out.behind.map((b) => [b.sub, b.consumerId])).toEqual([["stan", first.consumerId]]);
        expect(out.finished).toBeDefined();
        expect(await canLogin(prev.user)).toBe(false);
        expect(await logsIn(prev)).toBe(false);
        expect(await logsIn(next)).toBe(true);
      } finally {
        w.cancel();
      }
    },
    SLOW,
  );
});

describe("the logs", () => {
  it("carry no password the roles ever had: not the server's, not the sidecar's", () => {
    expect(passwords.size).toBeGreaterThanOrEqual(23);
    const logs = [x.logs.join("\n"), sidecar.stdout(), sidecar.stderr()].join("\n");
    expect(logs.length).toBeGreaterThan(0);
    for (const pw of passwords) expect(logs).not.toContain(pw);
    expect(logs).not.toContain(owner);
  });
});
