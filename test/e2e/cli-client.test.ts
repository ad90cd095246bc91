/**
 * The client verbs of the `secretd` binary against the real server: the same dist/main.js
 * a user runs, pointed at the test server by SECRETD_SERVER and SECRETD_TOKEN. The server
 * lives in this process, so the CLI runs as an asynchronous child (spawnSync would block
 * the very event loop that must answer it). Every run also checks that no token ever
 * shows up in the CLI's stdout or stderr.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MAIN = path.resolve("dist/main.js");
const MESH = "default";
/** Each CLI run is a fresh Node process (~0.5 s); the longer tests make a dozen. */
const SLOW = 60_000;

interface Run {
  status: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

let server: TestServer;
let dir: string;
let ownerToken: string;
let bobToken: string;
/** Every token handed to the CLI: none may ever be printed. */
const tokens = new Set<string>();

beforeAll(async () => {
  server = await startTestServer();
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-cli-client-"));
  ownerToken = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  bobToken = await server.token({ tenant: "acme", sub: "bob", roles: [] });
  tokens.add(ownerToken).add(bobToken);
});

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `secretd <args>` as `token` (SECRETD_TOKEN; null = no token at all). */
function secretd(args: string[], token: string | null = ownerToken, extraEnv: Record<string, string> = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, SECRETD_SERVER: server.address, ...extraEnv };
  delete env.SECRETD_TOKEN;
  if (token !== null) env.SECRETD_TOKEN = token;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (status) => {
      const stdout = Buffer.concat(out);
      const run = { status, stdout, out: stdout.toString("utf8"), err: Buffer.concat(err).toString("utf8") };
      for (const t of tokens) {
        expect(run.out).not.toContain(t);
        expect(run.err).not.toContain(t);
      }
      resolve(run);
    });
  });
}

/** Runs as the owner in MESH and expects success. */
async function ok(args: string[], token: string = ownerToken): Promise<Run> {
  const r = await secretd([...args, "--mesh", MESH], token);
  expect(r.err, `secretd ${args.join(" ")}`).toBe("");
  expect(r.status).toBe(0);
  return r;
}

function file(name: string, content: string | Buffer): string {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
}

describe("secretd create and get", () => {
  it("when a secret is created from a literal and a binary file, then get returns both and --output raw writes the exact bytes", async () => {
    const binary = Buffer.concat([Buffer.from([0xff, 0xfe, 0x00, 0x80]), randomBytes(2048)]);
    const binFile = file("blob.bin", binary);
    const created = await ok(["create", "app-creds", "--from-literal", "password=it's s3cr3t", "--from-file", `blob=${binFile}`, "--label", "app=web", "--description", "app creds"]);
    const meta = parseYaml(created.out) as Record<string, unknown>;
    expect(meta).toMatchObject({ name: "app-creds", mesh: MESH, version: 1, keys: ["blob", "password"], labels: { app: "web" }, description: "app creds" });
    expect(meta.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(meta.etag).toEqual(expect.any(String));
    expect(created.out).not.toContain("s3cr3t");

    const got = await ok(["get", "app-creds"]);
    const doc = parseYaml(got.out, { customTags: ["binary"] }) as { data: Record<string, unknown> };
    expect(doc.data.password).toBe("it's s3cr3t");
    expect(got.out).toMatch(/blob: !!binary/);
    expect(Buffer.from(doc.data.blob as Uint8Array).equals(binary)).toBe(true);

    const json = JSON.parse((await ok(["get", "app-creds", "--output", "json"])).out) as { data: Record<string, unknown> };
    expect(json.data.password).toBe("it's s3cr3t");
    expect(json.data.blob).toEqual({ base64: binary.toString("base64") });

    const raw = await ok(["get", "app-creds", "--key", "blob", "--output", "raw"]);
    expect(raw.stdout.equals(binary)).toBe(true);
    const rawText = await ok(["get", "app-creds", "--key", "password", "-o", "raw"]);
    expect(rawText.out).toBe("it's s3cr3t");

    const env = await ok(["get", "app-creds", "--key", "password", "--output", "env"]);
    expect(env.out).toBe(`PASSWORD='it'\\''s s3cr3t'\n`);
  }, SLOW);

  it("when --output raw is asked without exactly one --key, then it fails with INVALID_ARGUMENT and prints nothing", async () => {
    const r = await secretd(["get", "app-creds", "--mesh", MESH, "--output", "raw"]);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/^secretd: INVALID_ARGUMENT: /);
    expect(r.out).toBe("");
  }, SLOW);
});

describe("secretd list", () => {
  it("when listing with --all and a small page size, then every page is followed; without --all, one page and a hint", async () => {
    for (let i = 0; i < 5; i++) await ok(["create", `paged-${i}`, "--from-literal", "k=v", "--label", "set=paged"]);
    const all = JSON.parse((await ok(["list", "--selector", "set=paged", "--page-size", "2", "--all", "--output", "json"])).out) as { secrets: Array<{ name: string }>; nextPageToken?: string };
    expect(all.secrets.map((s) => s.name)).toEqual(["paged-0", "paged-1", "paged-2", "paged-3", "paged-4"]);
    expect(all.nextPageToken).toBeUndefined();

    const one = await secretd(["list", "--mesh", MESH, "--selector", "set=paged", "--page-size", "2"]);
    expect(one.status).toBe(0);
    const lines = one.out.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+KEYS\s+VERSION/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["paged-0", "paged-1"]);
    expect(one.err).toMatch(/--page-token \S+/);
  }, SLOW);
});

describe("secretd update", () => {
  it("when updating with the current etag, then a new version is written; a stale etag is ABORTED; no etag needs --force", async () => {
    const v1 = parseYaml((await ok(["create", "rotating", "--from-literal", "token=one"])).out) as { etag: string };
    const v2 = parseYaml((await ok(["update", "rotating", "--etag", v1.etag, "--from-literal", "token=two"])).out) as { etag: string; version: number };
    expect(v2.version).toBe(2);

    const stale = await secretd(["update", "rotating", "--mesh", MESH, "--etag", v1.etag, "--from-literal", "token=three"]);
    expect(stale.status).not.toBe(0);
    expect(stale.err).toMatch(/^secretd: ABORTED: /);

    const noEtag = await secretd(["update", "rotating", "--mesh", MESH, "--label", "x=y"]);
    expect(noEtag.status).not.toBe(0);
    expect(noEtag.err).toContain("INVALID_ARGUMENT: --etag");

    const forced = parseYaml((await ok(["update", "rotating", "--force", "--label", "x=y", "--mask", "labels"])).out) as { version: number; labels: Record<string, string> };
    expect(forced).toMatchObject({ version: 3, labels: { x: "y" } });
    expect((await ok(["get", "rotating", "--key", "token", "-o", "raw"])).out).toBe("two");
  }, SLOW);
});

describe("secretd grant, list-grants and revoke", () => {
  it("when the owner grants and then revokes read, then another user's token can read the secret only in between", async () => {
    await ok(["create", "shared", "--from-literal", "a=alpha", "--from-literal", "b=beta"]);
    const before = await secretd(["get", "shared", "--mesh", MESH], bobToken);
    expect(before.status).not.toBe(0);
    expect(before.err).toMatch(/^secretd: NOT_FOUND: /);

    const grant = parseYaml((await ok(["grant", "shared", "--subject", "user:bob", "--permission", "read", "--key", "a", "--ttl", "1h"])).out) as Record<string, unknown>;
    expect(grant).toMatchObject({ subject: "user:bob", permission: "read", keys: ["a"], grantedBy: "olivia" });

    const table = (await ok(["list-grants", "shared"])).out.trim().split("\n");
    expect(table[0]).toMatch(/^SUBJECT\s+PERMISSION\s+KEYS\s+EXPIRES\s+GRANTED_BY$/);
    expect(table[1]).toMatch(/^user:bob\s+read\s+a\s+\d{4}-\d\d-\d\dT\S+Z\s+olivia$/);

    expect((await ok(["get", "shared", "--key", "a", "-o", "raw"], bobToken)).out).toBe("alpha");
    const keyB = await secretd(["get", "shared", "--mesh", MESH, "--key", "b"], bobToken);
    expect(keyB.err).toMatch(/^secretd: PERMISSION_DENIED: /);

    expect((await ok(["revoke", "shared", "--subject", "user:bob"])).out).toContain("revoked");
    const after = await secretd(["get", "shared", "--mesh", MESH], bobToken);
    expect(after.err).toMatch(/^secretd: NOT_FOUND: /);
    expect((await ok(["list-grants", "shared", "-o", "json"])).out).toBe(`{\n  "grants": []\n}\n`);
  }, SLOW);
});

describe("secretd project", () => {
  it("when projecting from a YAML file, then env lines with the mapped names and shell-quoted values are printed", async () => {
    await ok(["create", "db", "--from-literal", "password=p@ss word", "--from-literal", "user=admin"]);
    await ok(["create", "api", "--from-literal", "tls.crt=CERT"]);
    const projection = file(
      "projection.yaml",
      [
        `mesh: ${MESH}`,
        "items:",
        "  - name: db",
        "    keys:",
        "      - key: password",
        "        env: DB_PASSWORD",
        '        mode: "0440"',
        "      - key: user",
        "        env: DB_USER",
        "  - name: api",
        "    env_prefix: APP_",
        "  - name: not-there",
        "    optional: true",
        "",
      ].join("\n"),
    );
    const r = await secretd(["project", "--projection", projection]);
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(r.out.split("\n").filter((l) => l !== "").sort()).toEqual(["APP_TLS_CRT=CERT", "DB_PASSWORD='p@ss word'", "DB_USER=admin"]);

    const doc = JSON.parse((await secretd(["project", "--projection", projection, "--output", "json"])).out) as { values: Array<{ env: string; mode: string }> };
    expect(doc.values.find((v) => v.env === "DB_PASSWORD")?.mode).toBe("0440");

    const bad = await secretd(["project", "--projection", file("bad.yaml", "items:\n  - name: db\n    keys:\n      - key: password\n        mode: rw\n")]);
    expect(bad.status).not.toBe(0);
    expect(bad.err).toContain("INVALID_ARGUMENT");
    expect(bad.err).toContain("items[0].keys[0].mode");
  }, SLOW);
});

describe("secretd delete", () => {
  it("when a secret is deleted (a wrong etag first refused), then get answers NOT_FOUND", async () => {
    await ok(["create", "doomed", "--from-literal", "k=v"]);
    const wrong = await secretd(["delete", "doomed", "--mesh", MESH, "--etag", "not-the-etag"]);
    expect(wrong.status).not.toBe(0);
    expect(wrong.err).toMatch(/^secretd: ABORTED: /);
    expect((await ok(["delete", "doomed"])).out).toContain("deleted");
    const gone = await secretd(["get", "doomed", "--mesh", MESH]);
    expect(gone.status).not.toBe(0);
    expect(gone.err).toMatch(/^secretd: NOT_FOUND: /);
  }, SLOW);
});

describe("secretd credentials", () => {
  it("when the token is bad, then the call fails with UNAUTHENTICATED and the token is not printed", async () => {
    const bad = `${ownerToken.slice(0, -4)}AAAA`;
    tokens.add(bad);
    const r = await secretd(["list", "--mesh", MESH], bad);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/^secretd: UNAUTHENTICATED: /);
    expect(r.out).toBe("");
  }, SLOW);

  it("when the token comes from --token-file with a trailing newline, then it works; with no token or two sources it is refused", async () => {
    await ok(["create", "via-file", "--from-literal", "k=from-file"]);
    const tokenFile = file("token", `${ownerToken}\n`);
    const viaFile = await secretd(["get", "via-file", "--mesh", MESH, "--key", "k", "-o", "raw", "--token-file", tokenFile], null);
    expect(viaFile.err).toBe("");
    expect(viaFile.out).toBe("from-file");

    const none = await secretd(["list", "--mesh", MESH], null);
    expect(none.status).not.toBe(0);
    expect(none.err).toMatch(/^secretd: INVALID_ARGUMENT: token/);

    const both = await secretd(["list", "--mesh", MESH, "--token", ownerToken, "--token-file", tokenFile], null);
    expect(both.status).not.toBe(0);
    expect(both.err).toMatch(/^secretd: INVALID_ARGUMENT: --token/);
  }, SLOW);

  it("when the server is unreachable, then the call ends within --timeout with a non-zero exit and a gRPC code", async () => {
    const r = await secretd(["list", "--mesh", MESH, "--timeout", "2s"], ownerToken, { SECRETD_SERVER: "127.0.0.1:1" });
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/^secretd: (UNAVAILABLE|DEADLINE_EXCEEDED): /);
  }, SLOW);
});
