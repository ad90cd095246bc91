/**
 * The `secretd` binary as a user runs it: serve on a fresh data dir (dev keys created,
 * a token printed), health and reflection answering, token mint, a bad setting named
 * at start, and SIGTERM draining to a clean exit.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, makeGenericClientConstructor, Metadata, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, describe, expect, it } from "vitest";
import { SecretServiceClient, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { CreateSecretRequest, GetSecretRequest } from "../../src/gen/secrets/v1/secrets.js";
import { DB_FILE } from "../../src/storage/open-storage.js";
import { createE2eDatabase, E2E_STORAGE } from "../helpers/postgres.js";

const MAIN = path.resolve("dist/main.js");
const dirs: string[] = [];

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "secretd-cli-"));
  dirs.push(d);
  return d;
}

/** A data dir holding a dev signing key, as the first `secretd serve` leaves it (mint never creates one). */
function withDevKey(): string {
  const d = tmp();
  writeFileSync(path.join(d, "jwt-dev.key"), `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
  return d;
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Served {
  child: ChildProcessWithoutNullStreams;
  address: string;
  token: string;
  stdout: () => string;
  stderr: () => string;
}

/** `secretd serve` on `dataDir`; with SECRETD_E2E_STORAGE=postgres on a fresh database, its URL in the environment (as docs/scaling-out.md says). */
async function serve(dataDir: string): Promise<Served> {
  const database = E2E_STORAGE === "postgres" ? { SECRETD_DATABASE_URL: await createE2eDatabase() } : {};
  const child = spawn(process.execPath, [MAIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir], { env: { ...process.env, SECRETD_LOG_LEVEL: "info", ...database } });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const deadline = Date.now() + 15_000;
  while (!/export SECRETD_TOKEN=(\S+)/.test(err)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const address = /serving on (\S+) /.exec(err)![1]!;
  const token = /export SECRETD_TOKEN=(\S+)/.exec(err)![1]!;
  return { child, address, token, stdout: () => out, stderr: () => err };
}

function unary<Req, Res>(client: object, method: string, req: Req, md: Metadata): Promise<Res> {
  const fn = (client as Record<string, (r: Req, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method]!;
  return new Promise((resolve, reject) => fn.call(client, req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

describe("secretd serve", () => {
  it("when started on a fresh data dir, then it creates dev keys with warnings, prints a working token and grpcurl example, and drains on SIGTERM", async () => {
    const dataDir = tmp();
    const s = await serve(dataDir);
    expect(s.stderr()).toContain("grpcurl -plaintext");
    expect(statSync(path.join(dataDir, "kek.json")).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dataDir, "jwt-dev.key")).mode & 0o777).toBe(0o600);
    // The back-end of this run: on PostgreSQL nothing is stored in the data dir but the keys.
    expect(existsSync(path.join(dataDir, DB_FILE))).toBe(E2E_STORAGE === "sqlite");

    const md = new Metadata();
    md.set("authorization", `Bearer ${s.token}`);
    const client = new SecretServiceClient(s.address, credentials.createInsecure());
    await unary(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: "default", name: "hello", stringData: { k: "world" } }), md);
    const got = await unary<GetSecretRequest, Secret>(client, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "hello" }), md);
    expect(Buffer.from(got.data.k!).toString()).toBe("world");
    client.close();

    const Health = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
    const health = new Health(s.address, credentials.createInsecure());
    const res = await unary<object, { status: unknown }>(health, "Check", { service: "secrets.v1.SecretService" }, new Metadata());
    expect(["SERVING", 1]).toContain(res.status);
    health.close();

    const exited = new Promise<number | null>((resolve) => s.child.on("exit", (code) => resolve(code)));
    s.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const lines = s.stdout().trim().split("\n").map((l) => JSON.parse(l) as { msg: string; level: string });
    expect(lines.some((l) => l.level === "warn" && /kek|KEK|key/.test(l.msg))).toBe(true);
    expect(lines.at(-1)?.msg).toBe("stopped");
    expect(s.stdout()).not.toContain(s.token);
    expect(s.stdout()).not.toContain("world");
  });

  it("when a setting is invalid, then serve exits non-zero naming it", () => {
    const r = spawnSync(process.execPath, [MAIN, "serve", "--listen", "nope", "--data-dir", tmp()], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("--listen");
    const r2 = spawnSync(process.execPath, [MAIN, "serve", "--data-dir", tmp()], { encoding: "utf8", env: { ...process.env, SECRETD_MAX_VERSIONS: "0" } });
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain("SECRETD_MAX_VERSIONS");
  });
});

describe("secretd token mint", () => {
  it("when minting, then it prints only a token whose claims are the ones asked for", async () => {
    const dataDir = withDevKey();
    const r = spawnSync(process.execPath, [MAIN, "token", "mint", "--data-dir", dataDir, "--tenant", "acme", "--sub", "svc", "--roles", "data-developer,x", "--meshes", "a,b", "--ttl", "15m"], {
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    const token = r.stdout.trim();
    expect(token.split(".")).toHaveLength(3);
    const { decodeJwt } = await import("jose");
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ tenant: "acme", sub: "svc", roles: ["data-developer", "x"], meshes: ["a", "b"] });
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it("when --ttl is longer than --jwt-max-ttl (default 24h), then it exits 2 naming the bound; at the bound it mints", () => {
    const dataDir = withDevKey();
    const mint = (...extra: string[]) =>
      spawnSync(process.execPath, [MAIN, "token", "mint", "--data-dir", dataDir, "--tenant", "acme", "--sub", "svc", ...extra], { encoding: "utf8" });
    const over = mint("--ttl", "25h");
    expect(over.status).toBe(2);
    expect(over.stderr).toContain("--jwt-max-ttl");
    expect(over.stdout).toBe("");
    expect(mint("--ttl", "24h").status).toBe(0);
    expect(mint("--ttl", "2h", "--jwt-max-ttl", "1h").status).toBe(2);
  });
});
