/**
 * The README walkthrough "Rotating a database password without downtime", run as it is
 * written: its shell blocks (marked `<!-- readme-rotation:NAME -->`) are read from
 * README.md and run by bash against the real server, the real `secretd` binary
 * (`secretd run --restart-on-change` as the application's supervisor) and a throw-away
 * PostgreSQL cluster. What is substituted: the server is this test's (SECRETD_SERVER; the
 * `secretd serve` line is the one not run), the dev token placeholder is a token of the
 * same tenant and role, and PGPORT is the cluster's. A README step that stops working,
 * or a block renamed or dropped, fails here.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAIN, waitFor } from "../helpers/cli-process.js";
import { startPostgres, type PostgresCluster, logsIn } from "../helpers/postgres.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 120_000;
const TOKEN_PLACEHOLDER = "eyJhbGciOi...";
const BLOCK = /<!-- readme-rotation:([a-z-]+) -->\n```sh\n([\s\S]*?)\n```/g;

const README = readFileSync(path.resolve("README.md"), "utf8");

/** The walkthrough's shell blocks by name, in README order. */
function readmeBlocks(): Map<string, string> {
  return new Map([...README.matchAll(BLOCK)].map((m) => [m[1]!, m[2]!]));
}

/**
 * The lines of the sample output the README shows after block `name` (its next text
 * block) that hold no time, id or port, which a run must print as they are.
 */
function sampleLines(name: string): string[] {
  const at = README.indexOf(`<!-- readme-rotation:${name} -->`);
  const m = /```text\n([\s\S]*?)\n```/.exec(README.slice(at));
  if (at < 0 || !m) throw new Error(`README.md shows no output after block ${name}`);
  return m[1]!.split("\n").filter((l) => !/\d\d:\d\d|^TIME /.test(l));
}

interface Shell {
  readonly pid: number;
  /** stdout */
  out(): string;
  err(): string;
  readonly exited: Promise<number>;
}

let cluster: PostgresCluster;
let server: TestServer;
let dir: string;
let token: string;
let blocks: Map<string, string>;
/** A shell's environment: no SECRETD_* or PG* of this process, `secretd` on PATH, the server's address. */
let baseEnv: NodeJS.ProcessEnv;
const shells: Shell[] = [];

/** Runs `script` with bash in the walkthrough's directory, as a process group of its own. */
function bash(script: string, env: NodeJS.ProcessEnv = baseEnv): Shell {
  const child = spawn("bash", ["-e", "-o", "pipefail", "-c", script], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString("utf8")));
  child.stderr.on("data", (b: Buffer) => (err += b.toString("utf8")));
  const exited = new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? (signal === null ? 0 : 128)));
  });
  const shell = { pid: child.pid!, out: () => out, err: () => err, exited };
  shells.push(shell);
  return shell;
}

/** The block `name`, with the dev token placeholder replaced by the real token (it must be there when `withToken`). */
function block(name: string, withToken = false): string {
  const text = blocks.get(name);
  if (text === undefined) throw new Error(`README.md has no block <!-- readme-rotation:${name} -->`);
  if (withToken && !text.includes(TOKEN_PLACEHOLDER)) throw new Error(`block ${name} no longer sets SECRETD_TOKEN=${TOKEN_PLACEHOLDER}`);
  return text.split(TOKEN_PLACEHOLDER).join(token);
}

/** Terminal 1's exports: the serve block without its `secretd serve` line, PGPORT the cluster's. */
function terminal1(): string {
  const lines = block("serve", true).split("\n");
  const serve = lines.filter((l) => /^secretd serve /.test(l));
  expect(serve, "the serve block starts the server once").toHaveLength(1);
  const rest = lines.filter((l) => !/^secretd serve /.test(l)).join("\n");
  expect(rest).toMatch(/\bPGPORT=5432\b/);
  return rest.replace(/\bPGPORT=5432\b/, `PGPORT=${cluster.port}`);
}

/** Runs a terminal-1 step to its end: exit 0, its stdout and stderr together. */
async function run(script: string): Promise<string> {
  const sh = bash(script);
  const code = await sh.exited;
  expect(code, sh.out() + sh.err()).toBe(0);
  return sh.out() + sh.err();
}

const loginWorks = (user: string, password: string): Promise<boolean> => logsIn(cluster.port, user, password);

beforeAll(async () => {
  blocks = readmeBlocks();
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-readme-rotation-"));
  const bin = path.join(dir, "bin");
  mkdirSync(bin);
  writeFileSync(path.join(bin, "secretd"), `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`);
  chmodSync(path.join(bin, "secretd"), 0o755);
  // Password logins for every role but the postgres superuser, as a packaged PostgreSQL.
  cluster = await startPostgres({ passwords: true });
  server = await startTestServer({ rotatorTimeout: "10s" });
  // What the dev token of the Quick start is: tenant dev, role tenant-admin.
  token = await server.token({ tenant: "dev", sub: "dev-admin", roles: ["tenant-admin"] });
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SECRETD_") && !k.startsWith("PG")));
  baseEnv = { ...clean, PATH: `${bin}:${process.env.PATH ?? ""}`, SECRETD_SERVER: server.address };
}, SLOW);

afterAll(async () => {
  for (const sh of shells) {
    try {
      process.kill(-sh.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  await Promise.all(shells.map((sh) => sh.exited));
  await server?.stop();
  cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, SLOW);

describe("README: rotating a database password without downtime", () => {
  it("when the walkthrough's blocks run as written, then the application switches from app_a to app_b without a failed query and app_a is retired", { timeout: SLOW }, async () => {
    expect([...blocks.keys()]).toEqual(["serve", "roles", "create", "app", "rotate", "retired"]);
    const t1 = terminal1();

    await run(`${t1}\n${block("roles")}`);
    expect(await loginWorks("app_a", "first-password-a")).toBe(true);

    const created = await run(`${t1}\n${block("create")}`);
    expect(created).toMatch(/name: db\n/);

    // Terminal 2: a fresh shell, none of terminal 1's PG* variables.
    const app = bash(block("app", true));
    await waitFor("the application's first query as app_a", () => / app_a\n/.test(app.out()) || app.out().includes("QUERY FAILED"), 30_000);

    const rotated = await run(`${t1}\n${block("rotate")}`);
    expect(rotated).toMatch(/state: done/);
    expect(sampleLines("rotate")).toContain("converged: true");
    for (const line of sampleLines("rotate")) expect(rotated.split("\n"), line).toContain(line);
    await waitFor("the application's first query as app_b", () => / app_b\n/.test(app.out()), 30_000);

    const retired = await run(`${t1}\n${block("retired")}`);
    expect(sampleLines("retired")).toContain("app_a|f");
    for (const line of sampleLines("retired")) expect(retired.split("\n"), line).toContain(line);
    expect(retired).toContain("app_a|f\napp_b|t\n");
    expect(retired).toContain("no previous stage: retired");
    expect(retired).toMatch(/RotateSecret\s+OK\s+dev-admin\s+default\s+db\s+2\s+current\s+password,username\s/);
    expect(retired).toMatch(/RetireVersion\s+OK\s+secretd:rotation\s+default\s+db\s+1\s+previous\s/);

    // The application never failed a query, and logged in as app_a, then app_b only.
    const lines = app.out().trim().split("\n");
    expect(app.out()).not.toContain("QUERY FAILED");
    const users = lines.map((l) => l.split(" ")[1]);
    expect(users.indexOf("app_b")).toBeGreaterThan(users.lastIndexOf("app_a"));
    expect(new Set(users)).toEqual(new Set(["app_a", "app_b"]));
    // The password the rotation made is in no output of the walkthrough nor the server's log.
    const current = Buffer.from((await server.call<{ data: Record<string, Uint8Array> }>("getSecret", { mesh: "default", name: "db" }, token)).data.password ?? []).toString();
    expect(current).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(await loginWorks("app_b", current)).toBe(true);
    for (const text of [created, rotated, retired, app.out(), app.err(), server.logs.join("\n")]) expect(text).not.toContain(current);
  });
});
