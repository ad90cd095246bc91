/**
 * The postgres rotator and a server that dies mid-rotation (#30 item 6): `secretd serve`
 * on PostgreSQL storage is SIGKILLed at known points of a rotation, held there by locks
 * the test takes from its own sessions:
 *   - in ALTER ROLE: the other role's pg_authid row updated by an open transaction;
 *   - between ALTER ROLE and storing the new version as current: ALTER ROLE let through,
 *     then the secret's row locked (FOR UPDATE) in the storage database, so the promotion
 *     waits (the target already has the new password, the store does not);
 *   - in the retire hook (NOLOGIN of the previous role): that role's row locked.
 * After a restart on the same data dir and database the rotation resumes (once the dead
 * process's claim lapsed) and ends DONE (or rolls back, FAILED), and in every case the
 * stored current username/password logs in to the target. Several rounds; no password in
 * any captured log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Retire, RotationState, SecretServiceClient, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { MAIN } from "../helpers/cli.js";
import { startPostgres, type PostgresCluster, logsIn as pgLogsIn, adminSecretData, createAlternatingRoles } from "../helpers/postgres.js";
import { unaryCall, type Method } from "../helpers/server.js";

const MESH = "m";
/**
 * Short, so the restarted server takes over soon (a dead process's claim lasts 15 s plus
 * this), yet long enough that a statement held by the test is killed before it times out.
 */
const ROTATOR_TIMEOUT = "8s";

interface Serve {
  readonly child: ChildProcess;
  call<Res>(method: Method, req: object): Promise<Res>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

describe("postgres rotator: a server killed mid-rotation", () => {
  let cluster: PostgresCluster;
  let storageUrl: string;
  let dataDir: string;
  /** Everything every server process wrote (stdout and stderr). */
  let output = "";
  const passwords = new Set<string>();
  let server: Serve | undefined;

  const session = async (url: string): Promise<pg.Client> => {
    const c = new pg.Client({ connectionString: url });
    c.on("error", () => undefined);
    await c.connect();
    return c;
  };
  const targetUrl = (): string => cluster.url;
  const logsIn = (user: string, password: string): Promise<boolean> => pgLogsIn(cluster.port, user, password);
  /** Sessions of database `db` waiting on a lock while running a statement that starts with `prefix`. */
  let monitor: pg.Client;
  const waiting = async (db: string, prefix: string): Promise<number> => {
    const r = await monitor.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND starts_with(query, $2)", [db, prefix]);
    return r.rows[0]!.n;
  };
  /** Polls `check` every 50 ms (each look is a query) until true. */
  const until = async (check: () => Promise<boolean>, ms = 30_000): Promise<void> => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const text = (s: Secret, k: string): string => Buffer.from(s.data[k] ?? []).toString();

  async function startServe(): Promise<Serve> {
    const args = [MAIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--database-url", storageUrl, "--rotator-timeout", ROTATOR_TIMEOUT, "--log-level", "info", "--dev-token", "always"];
    // Its own process group, killed as a whole.
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    let mine = "";
    const take = (b: Buffer): void => {
      mine += b.toString();
      output += b.toString();
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    await eventually(() => /serving on \S+ /.test(mine) && /export SECRETD_TOKEN=\S+/.test(mine), 30_000);
    const address = /serving on (\S+) /.exec(mine)![1]!;
    const token = /export SECRETD_TOKEN=(\S+)/.exec(mine)![1]!;
    const client = new SecretServiceClient(address, credentials.createInsecure());
    return {
      child,
      call: (method, req) => unaryCall(client, method, req, token),
      async kill() {
        process.kill(-child.pid!, "SIGKILL");
        await exited;
        client.close();
      },
      async stop() {
        client.close();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          await exited;
        }
      },
    };
  }

  const s = (): Serve => server!;
  const get = (name: string, stage = ""): Promise<Secret> => s().call<Secret>("getSecret", { mesh: MESH, name, stage });
  const rollout = (name: string, version: number): Promise<Rollout> => s().call<Rollout>("getRollout", { mesh: MESH, name, version });
  const currentLogsIn = async (name: string): Promise<{ user: string; ok: boolean }> => {
    const cur = await get(name);
    passwords.add(text(cur, "password"));
    return { user: text(cur, "username"), ok: await logsIn(text(cur, "username"), text(cur, "password")) };
  };
  const kill = async (): Promise<void> => {
    await s().kill();
    server = undefined;
  };

  beforeAll(async () => {
    cluster = await startPostgres({ passwords: true });
    storageUrl = await cluster.createDatabase();
    dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-rotkill-"));
    monitor = await session(targetUrl());
    await createAlternatingRoles(targetUrl(), "kill", "initial-kill-a");
    passwords.add("initial-kill-a");
    server = await startServe();
    await s().call("createSecret", { mesh: MESH, name: "pgadmin", stringData: adminSecretData(cluster.port) });
    await s().call("createSecret", {
      mesh: MESH,
      name: "db",
      stringData: { host: "127.0.0.1", username: "kill_a", password: "initial-kill-a" },
      annotations: { "rotator.secretd.io/postgres-roles": "kill_a,kill_b", "rotator.secretd.io/postgres-admin-secret": "pgadmin" },
    });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await monitor?.end();
    cluster?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  type Point = "alter-role" | "before-store" | "retire-hook";
  const ROUNDS: readonly Point[] = ["alter-role", "before-store", "retire-hook", "before-store", "alter-role", "retire-hook"];

  it(`SIGKILL at ${ROUNDS.join(", ")}: after a restart the rotation ends DONE or rolls back, and the stored current always logs in`, { timeout: 400_000 }, async () => {
    const outcomes: string[] = [];
    for (const [round, point] of ROUNDS.entries()) {
      const before = await get("db");
      const from = text(before, "username");
      const other = from === "kill_a" ? "kill_b" : "kill_a";
      const target = await session(targetUrl());
      const store = await session(storageUrl);
      try {
        await target.query("BEGIN");
        // The role the blocked statement waits for: the other one (its rotate step) or the current one (retire hook).
        const locked = point === "retire-hook" ? from : other;
        await target.query(`ALTER ROLE ${locked} CONNECTION LIMIT -1`);
        const rotation = s()
          .call<Rollout>("rotateSecret", { mesh: MESH, name: "db", etag: before.etag, rotator: "postgres", retire: Retire.RETIRE_IMMEDIATE })
          .catch((err: unknown) => err);
        if (point === "alter-role") {
          await until(async () => (await waiting("postgres", "ALTER ROLE")) === 1);
          passwords.add(text(await get("db", "pending"), "password"));
          await kill();
          await target.query("ROLLBACK");
          expect(await rotation).toBeInstanceOf(Error);
        } else if (point === "before-store") {
          await until(async () => (await waiting("postgres", "ALTER ROLE")) === 1);
          const pendingPw = text(await get("db", "pending"), "password");
          passwords.add(pendingPw);
          await store.query("BEGIN");
          await store.query("SELECT 1 FROM secrets WHERE uid = $1 FOR UPDATE", [before.uid]);
          await target.query("ROLLBACK");
          const storeDb = new URL(storageUrl).pathname.slice(1);
          await until(async () => (await waiting(storeDb, "SELECT 1 FROM secrets WHERE uid")) === 1);
          await kill();
          expect(await rotation).toBeInstanceOf(Error);
          // The target has the new password; the store still has the old one as current: both log in.
          expect(await logsIn(other, pendingPw)).toBe(true);
          await store.query("ROLLBACK");
        } else {
          // Promoted already (RETIRING): the new version is current while the previous role is retired.
          expect(await rotation).toMatchObject({ version: before.version + 1, state: RotationState.ROTATION_STATE_RETIRING });
          await until(async () => (await waiting("postgres", "ALTER ROLE")) === 1);
          expect(text(await get("db"), "username")).toBe(other);
          await kill();
          await target.query("ROLLBACK");
        }
      } finally {
        await target.query("ROLLBACK").catch(() => undefined);
        await store.query("ROLLBACK").catch(() => undefined);
        await target.end();
        await store.end();
      }
      // Killed mid-rotation: whatever the store says is current logs in right now.
      server = await startServe();
      expect((await currentLogsIn("db")).ok).toBe(true);
      // The dead process's claim lapses (15 s + the rotator timeout), then the new one resumes it.
      const terminal = [RotationState.ROTATION_STATE_DONE, RotationState.ROTATION_STATE_FAILED];
      await eventually(async () => terminal.includes((await rollout("db", before.version + 1)).state), 60_000);
      const end = await rollout("db", before.version + 1);
      outcomes.push(`round ${round + 1} ${point}: ${end.state === RotationState.ROTATION_STATE_DONE ? "done" : `failed (${end.detail})`}`);
      const now = await currentLogsIn("db");
      expect(now.ok).toBe(true);
      if (end.state === RotationState.ROTATION_STATE_DONE) {
        expect(end.version).toBe(before.version + 1);
        expect(now.user).toBe(other);
        // The previous role retired by the resumed hook.
        expect(await logsIn(from, text(before, "password"))).toBe(false);
      }
    }
    // Every round resumed to DONE: each kill point is one the rotation survives.
    expect(outcomes.filter((o) => o.includes("done"))).toHaveLength(ROUNDS.length);
    expect(output).toContain("rotation finished");
    for (const pw of passwords) expect(output).not.toContain(pw);
  });
});
