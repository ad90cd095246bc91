/**
 * `secretd backup`, `restore` and `doctor` as a user runs them: the real CLI process on
 * the data dir of a real server. The backup is taken while the server takes writes; it
 * must restore to exactly the data of one moment, hold no value in clear and no KEK.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, chmodSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  CreateSecretRequest,
  GetSecretRequest,
  SecretServiceClient,
  UpdateSecretRequest,
  type ListSecretsResponse,
  type Secret,
} from "../../src/gen/secrets/v1/secrets.js";
import { runCli, type CliRun } from "../helpers/cli.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 90_000;
const VALUE_PREFIX = "backup-value-Zq7";

let root: string;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "secretd-backup-"));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function secretd(args: string[]): Promise<CliRun> {
  return runCli(args);
}

function value(prefix: string, i: number, version: number): string {
  return `${VALUE_PREFIX}-${prefix}${i}-v${version}`;
}

async function listAll(server: TestServer, token: string): Promise<Secret[]> {
  const out: Secret[] = [];
  let pageToken = "";
  do {
    const page = await server.call<ListSecretsResponse>("listSecrets", { mesh: "m", pageSize: 1000, pageToken }, token);
    out.push(...page.secrets);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return out;
}

/** A client on a connection of its own, so `--workers` deals it to a worker of its own. */
function ownConnection(server: TestServer): SecretServiceClient {
  return new SecretServiceClient(server.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

function callOn<Res>(c: SecretServiceClient, method: "createSecret" | "getSecret" | "updateSecret", req: object, token: string): Promise<Res> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const full = ({ createSecret: CreateSecretRequest, getSecret: GetSecretRequest, updateSecret: UpdateSecretRequest }[method] as { fromPartial(o: object): unknown }).fromPartial(req);
  const fn = (c as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method]!;
  return new Promise((resolve, reject) => fn.call(c, full, md, (e, r) => (e ? reject(e) : resolve(r))));
}

async function until(f: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each([1, 2])("backup and restore (--workers %i)", (workers) => {
  it("when a backup is taken under write load, then it passes integrity_check, holds no value and no KEK, and restores to the same data", async () => {
    const dataDir = path.join(root, `live-${workers}`);
    const server = await startTestServer({ dataDir, workers: String(workers) });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    // One sequential writer per worker, each on its own connection: writer p creates p<n>-i
    // and then updates p<n>-(i-1), so every write of a writer depends on its previous one.
    const prefixes = Array.from({ length: workers }, (_, n) => `w${n}-`);
    const created = new Map(prefixes.map((p) => [p, 0]));
    const total = (): number => [...created.values()].reduce((a, b) => a + b, 0);
    let stop = false;
    const clients = prefixes.map(() => ownConnection(server));
    const writers = prefixes.map(async (p, n) => {
      const c = clients[n]!;
      for (let i = 0; !stop; i++) {
        await callOn(c, "createSecret", { mesh: "m", name: `${p}${i}`, stringData: { v: value(p, i, 1) } }, token);
        created.set(p, i + 1);
        if (i > 0) {
          const prev = await callOn<Secret>(c, "getSecret", { mesh: "m", name: `${p}${i - 1}` }, token);
          await callOn(c, "updateSecret", { mesh: "m", name: `${p}${i - 1}`, etag: prev.etag, stringData: { v: value(p, i - 1, 2) }, updateMask: ["data"] }, token);
        }
      }
    });
    try {
      await until(() => prefixes.every((p) => created.get(p)! >= 20));
      const before = new Map(created);
      const file = path.join(root, `live-${workers}.db`);
      const b = await secretd(["backup", "--data-dir", dataDir, file]);
      const after = total();
      expect(b.err).toBe("");
      expect(b.status).toBe(0);
      expect(b.out).toMatch(/^backed up \d+ secrets, \d+ versions/);
      expect(after).toBeGreaterThan([...before.values()].reduce((a, x) => a + x, 0)); // the server took writes while the copy ran
      stop = true;
      await Promise.all(writers);
      if (workers > 1) {
        // The writes came through every worker (their access lines say which; flushed within a second).
        const serving = (): Set<unknown> =>
          new Set(server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.method === "CreateSecret").map((l) => l.worker));
        await until(() => serving().size === workers);
      }

      const bytes = readFileSync(file);
      expect(bytes.includes(Buffer.from(VALUE_PREFIX))).toBe(false);
      const kek = JSON.parse(readFileSync(path.join(dataDir, "kek.json"), "utf8")) as { keys: Array<{ key: string }> };
      for (const k of kek.keys) {
        expect(bytes.includes(Buffer.from(k.key, "base64"))).toBe(false);
        expect(bytes.includes(Buffer.from(k.key))).toBe(false);
      }
      const db = new Database(file, { readonly: true });
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      db.close();

      const restoredDir = path.join(root, `restored-${workers}`);
      const r = await secretd(["restore", "--data-dir", restoredDir, file]);
      expect(r.err).toContain("no KEK file"); // the warning: the KEK travels separately
      expect(r.status).toBe(0);
      copyFileSync(path.join(dataDir, "kek.json"), path.join(restoredDir, "kek.json"));
      copyFileSync(path.join(dataDir, "jwt-dev.key"), path.join(restoredDir, "jwt-dev.key"));
      const doctor = await secretd(["doctor", "--data-dir", restoredDir]);
      expect(doctor.out).toContain("no problems found");
      expect(doctor.status).toBe(0);

      const restored = await startTestServer({ dataDir: restoredDir });
      try {
        const got = await listAll(restored, token);
        for (const p of prefixes) {
          const mine = got.filter((s) => s.name.startsWith(p));
          const names = mine.map((s) => Number(s.name.slice(p.length))).sort((x, y) => x - y);
          // One moment of a sequential writer: p0 … p(n-1), nothing missing in between.
          expect(names.length).toBeGreaterThanOrEqual(before.get(p)!);
          expect(names).toEqual(names.map((_, k) => k));
          for (const s of mine) {
            const n = Number(s.name.slice(p.length));
            const r2 = await restored.call<Secret>("getSecret", { mesh: "m", name: s.name }, token);
            const original = await server.call<Secret>("getSecret", { mesh: "m", name: s.name, version: r2.version }, token);
            expect(r2.uid).toBe(original.uid);
            expect(Buffer.from(r2.data.v!).toString()).toBe(value(p, n, r2.version));
            expect(Buffer.from(original.data.v!).toString()).toBe(value(p, n, r2.version));
          }
          // A snapshot between two writes: the newest secret lacks its update, and the one
          // before it may too (created, but its predecessor's update not yet committed).
          const last = names.length - 1;
          const v1 = mine.filter((s) => s.version === 1).map((s) => Number(s.name.slice(p.length))).sort((x, y) => x - y);
          expect([[last], [last - 1, last]]).toContainEqual(v1);
        }
      } finally {
        await restored.stop();
      }
    } finally {
      stop = true;
      await Promise.all(writers.map((w) => w.catch(() => {})));
      for (const c of clients) c.close();
      await server.stop();
    }
  }, SLOW);
});

describe("restore", () => {
  it("when restore meets a live server or a data dir with secrets, then it refuses (only --force overrides the second)", async () => {
    const dataDir = path.join(root, "refuse");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    await server.call("createSecret", { name: "keep-me", stringData: { v: "original" } }, token);
    const file = path.join(root, "refuse.db");
    expect((await secretd(["backup", "--data-dir", dataDir, file])).status).toBe(0);
    const again = await secretd(["backup", "--data-dir", dataDir, file]);
    expect(again.status).toBe(2);
    expect(again.err).toContain("exists (add --force");

    const live = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
    expect(live.status).toBe(1);
    expect(live.err).toContain("is in use");
    await server.call("createSecret", { name: "after-backup", stringData: { v: "later" } }, token);
    await server.stop();

    const full = await secretd(["restore", "--data-dir", dataDir, file]);
    expect(full.status).toBe(1);
    expect(full.err).toContain("is not empty");
    const forced = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
    expect(forced.err).toBe("");
    expect(forced.status).toBe(0);
    const back = await startTestServer({ dataDir });
    try {
      const names = (await back.call<ListSecretsResponse>("listSecrets", {}, token)).secrets.map((s) => s.name);
      expect(names).toEqual(["keep-me"]);
    } finally {
      await back.stop();
    }
  }, SLOW);
});

/** Objects secretd's migrations never make, as an attacker would plant them in a backup. */
const PLANTED = [
  {
    what: "a trigger that deletes one tenant's audit events as they are written",
    sql: "CREATE TRIGGER hide_acme AFTER INSERT ON audit_events WHEN NEW.tenant = 'acme' BEGIN DELETE FROM audit_events WHERE id = NEW.id; END",
    named: 'unexpected trigger "hide_acme" on table "audit_events"',
  },
  { what: "a view", sql: "CREATE VIEW every_dek AS SELECT uid, dek FROM secret_versions", named: 'unexpected view "every_dek"' },
  { what: "an index", sql: "CREATE INDEX by_payload ON secret_versions (payload)", named: 'unexpected index "by_payload" on table "secret_versions"' },
  { what: "a table", sql: "CREATE TABLE stash (v BLOB)", named: 'unexpected table "stash"' },
  {
    what: "a changed table",
    sql: "ALTER TABLE audit_events ADD COLUMN note TEXT",
    named: 'changed table "audit_events": its SQL is not what secretd\'s migrations make',
  },
];

describe("restore of a backup whose schema secretd did not make", () => {
  let source: string;
  beforeAll(async () => {
    const dataDir = path.join(root, "planted-source");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    await server.call("createSecret", { mesh: "m", name: "db", stringData: { v: "planted-value" } }, token);
    source = path.join(root, "planted-clean.db");
    expect((await secretd(["backup", "--data-dir", dataDir, source])).status).toBe(0);
    await server.stop();
  }, SLOW);

  it.each(PLANTED)("when the backup carries $what, then restore refuses naming it and leaves the data dir untouched", async ({ sql, named }) => {
    const file = path.join(root, `planted-${named.split('"')[1]}.db`);
    copyFileSync(source, file);
    const db = new Database(file);
    db.exec(sql);
    db.close();
    const dataDir = path.join(root, `planted-target-${named.split('"')[1]}`);
    const r = await secretd(["restore", "--data-dir", dataDir, file]);
    expect(r.status).toBe(1);
    expect(r.err).toContain("does not have the schema secretd's migrations make, so it is not restored");
    expect(r.err).toContain(named);
    expect(existsSync(path.join(dataDir, "secretd.db"))).toBe(false);
  }, SLOW);

  it("when the backup is as secretd made it, then restore accepts it and doctor finds its schema objects sound", async () => {
    const dataDir = path.join(root, "planted-clean-target");
    const r = await secretd(["restore", "--data-dir", dataDir, source]);
    expect(r.err).toContain("no KEK file"); // the keyring stays with the source data dir
    expect(r.status).toBe(0);
    copyFileSync(path.join(root, "planted-source", "kek.json"), path.join(dataDir, "kek.json"));
    const d = await secretd(["doctor", "--data-dir", dataDir]);
    expect(d.out).toMatch(/^ok +database .*: schema objects are the ones secretd's migrations make/m);
    expect(d.status).toBe(0);
  }, SLOW);
});

/** A process's state letter from /proc (R, S, T stopped, Z dead but not reaped), or "gone". */
function procState(pid: number): string {
  try {
    return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))?.[1] ?? "gone";
  } catch {
    return "gone";
  }
}

function parentOf(pid: number): number {
  return Number(/^\d+ \(.*\) \S (\d+)/.exec(readFileSync(`/proc/${pid}/stat`, "utf8"))![1]);
}

describe("restore with --workers", () => {
  it.skipIf(process.platform !== "linux")(
    "when every worker is dead and the primary has not restarted them yet, then restore still refuses: the primary holds the database",
    async () => {
      const dataDir = path.join(root, "refuse-workers");
      const server = await startTestServer({ dataDir, workers: "2" });
      const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
      await server.call("createSecret", { name: "keep-me", stringData: { v: "original" } }, token);
      const file = path.join(root, "refuse-workers.db");
      expect((await secretd(["backup", "--data-dir", dataDir, file])).status).toBe(0);
      await server.call("createSecret", { name: "after-backup", stringData: { v: "later" } }, token);
      const workerPids = (): number[] => [
        ...new Set(server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.worker === "number").map((l) => l.pid as number)),
      ];
      await until(() => workerPids().length === 2);
      const primary = parentOf(workerPids()[0]!);
      // Stopped, the primary cannot restart the workers; killed, they hold nothing any more.
      process.kill(primary, "SIGSTOP");
      try {
        for (const pid of workerPids()) process.kill(pid, "SIGKILL");
        await until(() => workerPids().every((pid) => ["Z", "gone"].includes(procState(pid))));
        const r = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
        expect(r.status).toBe(1);
        expect(r.err).toContain("is in use");
      } finally {
        process.kill(primary, "SIGCONT");
      }
      // The primary restarts its workers (on a fresh port: with no worker left, node:cluster
      // closed the shared :0 socket), and the data is untouched.
      await until(() => workerPids().length === 4, 30_000);
      const live = new Database(path.join(dataDir, "secretd.db"), { readonly: true });
      const names = live.prepare("SELECT name FROM secrets ORDER BY name").pluck().all() as string[];
      live.close();
      expect(names).toEqual(["after-backup", "keep-me"]);
      await server.stop();
      const forced = await secretd(["restore", "--data-dir", dataDir, file, "--force"]);
      expect(forced.status).toBe(0);
    },
    SLOW,
  );
});

describe("doctor", () => {
  it("when a stored blob is tampered with, an owner swapped in SQL and the KEK file is 0644, then doctor names all three and exits 1", async () => {
    const dataDir = path.join(root, "doctor");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    for (const n of ["alpha", "bravo", "charlie"]) await server.call("createSecret", { mesh: "m", name: n, stringData: { v: `doctor-value-${n}` } }, token);
    const healthy = await secretd(["doctor", "--data-dir", dataDir]); // next to the running server
    expect(healthy.out).toContain("opened 3 of 3 stored versions");
    expect(healthy.out).toMatch(/^ok +checked the row MACs of 3 secrets: 3 authenticate \(/m);
    expect(healthy.status).toBe(0);
    await server.stop();

    const db = new Database(path.join(dataDir, "secretd.db"));
    const uid = db.prepare("SELECT uid FROM secrets WHERE name = 'bravo'").pluck().get() as string;
    const payload = db.prepare("SELECT payload FROM secret_versions WHERE uid = ?").pluck().get(uid) as Buffer;
    payload[payload.length - 1]! ^= 0x01;
    db.prepare("UPDATE secret_versions SET payload = ? WHERE uid = ?").run(payload, uid);
    // The blob still opens, but the row's MAC no longer checks.
    db.prepare("UPDATE secrets SET owner = 'mallory' WHERE name = 'charlie'").run();
    const charlie = db.prepare("SELECT uid FROM secrets WHERE name = 'charlie'").pluck().get() as string;
    db.close();
    chmodSync(path.join(dataDir, "kek.json"), 0o644);

    const r = await secretd(["doctor", "--data-dir", dataDir]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/^FAIL +KEK file .*kek\.json: mode 0644/m);
    expect(r.out).toMatch(new RegExp(`^FAIL +does not open: tenant "acme" mesh "m" secret "bravo" version 1 \\(uid ${uid}\\): DATA_LOSS`, "m"));
    expect(r.out).toContain("opened 2 of 3 stored versions");
    expect(r.out).toContain("integrity_check ok");
    expect(r.out).toMatch(new RegExp(`^FAIL +rows do not authenticate: tenant "acme" mesh "m" secret "charlie" \\(uid ${charlie}\\): `, "m"));
    expect(r.out).toMatch(/^FAIL +checked the row MACs of 3 secrets: 2 authenticate, 1 do not/m);
    expect(r.out).toContain("3 problems found");
    expect(r.out + r.err).not.toContain("doctor-value-");
  }, SLOW);

  it("when a trigger is planted in a live database, then doctor names it and exits 1", async () => {
    const dataDir = path.join(root, "doctor-trigger");
    const server = await startTestServer({ dataDir });
    try {
      const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
      await server.call("createSecret", { mesh: "m", name: "db", stringData: { v: "trigger-value" } }, token);
      const db = new Database(path.join(dataDir, "secretd.db"));
      db.exec(PLANTED[0]!.sql);
      db.close();
      const r = await secretd(["doctor", "--data-dir", dataDir]); // next to the running server
      expect(r.status).toBe(1);
      expect(r.out).toMatch(/^FAIL +database .*secretd\.db: schema: unexpected trigger "hide_acme" on table "audit_events": secretd's migrations make no such object$/m);
      expect(r.out).toContain("1 problem found");
    } finally {
      await server.stop();
    }
  }, SLOW);

  it("when settings come from a flag, the environment and a YAML file, then doctor echoes each with its source and masks URL credentials", async () => {
    const dataDir = path.join(root, "echo");
    const cfg = path.join(root, "secretd.yaml");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(cfg, `dataDir: ${dataDir}\njwtJwksUrl: https://svc:Hunter2-pw@idp.example/jwks?access_token=Tok-123\nlogLevel: warn\n`);
    const r = await runCli(["doctor", "--config", cfg, "--max-versions", "5"], { env: { SECRETD_TENANT_CLAIM: "org" } });
    expect(r.out).toMatch(/^ {2}maxVersions +5 {2}\(flag\)$/m);
    expect(r.out).toMatch(/^ {2}tenantClaim +org {2}\(env SECRETD_TENANT_CLAIM\)$/m);
    expect(r.out).toMatch(/^ {2}logLevel +warn {2}\(file\)$/m);
    expect(r.out).toMatch(/^ {2}jwtJwksUrl +https:\/\/svc:\*\*\*@idp\.example\/jwks\?\*\*\* {2}\(file\)$/m);
    expect(r.out + r.err).not.toContain("Hunter2-pw");
    expect(r.out + r.err).not.toContain("Tok-123");
  }, SLOW);

  it("when -o json or -o yaml is given, then doctor prints one document of the configuration, the checks and the problem count", async () => {
    const dataDir = path.join(root, "doctor-doc");
    const server = await startTestServer({ dataDir });
    const token = await server.token({ tenant: "acme", sub: "ops", roles: ["tenant-admin"] });
    await server.call("createSecret", { name: "one", stringData: { v: "doc-value-one" } }, token);
    await server.stop();
    type Doc = { configuration: Array<{ key: string; value: string; source: string; env?: string }>; checks: Array<{ verdict: string; text: string }>; problems: number };
    const j = await runCli(["doctor", "--data-dir", dataDir, "-o", "json", "--jwt-jwks-url", "https://u:Pw-Doc-7@idp/jwks"]);
    const doc = JSON.parse(j.out) as Doc;
    expect(doc.problems).toBe(0);
    expect(doc.checks).toContainEqual({ verdict: "ok", text: "configuration is valid" });
    expect(doc.checks.some((c) => c.verdict === "ok" && c.text.startsWith("opened 1 of 1 stored versions"))).toBe(true);
    expect(doc.configuration).toContainEqual({ key: "jwtJwksUrl", value: "https://u:***@idp/jwks", source: "flag" });
    expect(doc.configuration).toContainEqual({ key: "dataDir", value: dataDir, source: "flag" });
    expect(j.status).toBe(0);
    chmodSync(path.join(dataDir, "kek.json"), 0o640);
    const y = await runCli(["doctor", "-o", "yaml"], { env: { SECRETD_DATA_DIR: dataDir } });
    const { parse } = await import("yaml");
    const ydoc = parse(y.out) as Doc;
    expect(ydoc.problems).toBe(1);
    expect(ydoc.checks.find((c) => c.verdict === "FAIL")?.text).toMatch(/^KEK file .*: mode 0640/);
    expect(ydoc.configuration).toContainEqual({ key: "dataDir", value: dataDir, source: "env", env: "SECRETD_DATA_DIR" });
    expect(y.status).toBe(1);
    expect(j.out + j.err + y.out + y.err).not.toContain("Pw-Doc-7");
    expect(j.out + y.out).not.toContain("doc-value-one");
  }, SLOW);

  it("when the YAML file has a bad value or an unknown key, then doctor (like serve) names the setting", async () => {
    const { writeFileSync } = await import("node:fs");
    const cfg = path.join(root, "bad.yaml");
    writeFileSync(cfg, "maxVersions: 0\n");
    const r = await runCli(["doctor", "--config", cfg]);
    expect(r.status).toBe(1);
    expect(r.out).toContain("FAIL  configuration: INVALID_ARGUMENT: invalid configuration --max-versions / SECRETD_MAX_VERSIONS");
    writeFileSync(cfg, "max-versions: 3\n");
    const s = await runCli(["serve", "--config", cfg]);
    expect(s.status).toBe(2);
    expect(s.err).toContain('unknown setting "max-versions" (keys are camelCase: maxVersions)');
  }, SLOW);
});
