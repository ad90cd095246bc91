/**
 * The audit trail through the real binaries: `secretd serve` stopped by SIGTERM right
 * after calls still writes their events (storage and --audit-file), and `secretd audit`
 * reads them back with its filters and output formats.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { CreateSecretRequest, GetSecretRequest, SecretServiceClient, type ListAuditEventsResponse } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MAIN = path.resolve("dist/main.js");
const VALUE = "cli-audit-value-Pq4nB8";
const SLOW = 60_000;

interface Run {
  status: number | null;
  out: string;
  err: string;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, out: Buffer.concat(out).toString("utf8"), err: Buffer.concat(err).toString("utf8") }));
  });
}

/** `secretd serve` as a child; resolves once its banner shows the address and the dev token. */
async function serve(
  dataDir: string,
  extra: string[],
  logLevel = "warn",
): Promise<{ child: ChildProcess; address: string; token: string; stderr: () => string; stdout: () => string }> {
  const child = spawn(process.execPath, [MAIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", logLevel, "--dev-token", "always", ...extra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()));
  let stderr = "";
  const banner = await new Promise<{ address: string; token: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 30_000);
    child.once("exit", (code) => reject(new Error(`server exited (${code}) before serving: ${stderr}`)));
    child.stderr!.on("data", (b: Buffer) => {
      stderr += b.toString();
      const address = /serving on (\S+) /.exec(stderr)?.[1];
      const token = /export SECRETD_TOKEN=(\S+)/.exec(stderr)?.[1];
      if (address && token) {
        clearTimeout(timer);
        resolve({ address, token });
      }
    });
  });
  return { child, ...banner, stderr: () => stderr, stdout: () => stdout };
}

function unary<Req, Res>(client: SecretServiceClient, method: "createSecret" | "getSecret", req: Req, token: string, rid: string): Promise<Res> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  md.set("x-request-id", rid);
  const fn = client[method] as unknown as (r: Req, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void;
  return new Promise((resolve, reject) => fn.call(client, req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

let dataDir: string;
let auditFile: string;
let devToken: string;
let server: TestServer;
let plainToken: string;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-audit-cli-"));
  auditFile = path.join(dataDir, "audit.jsonl");
}, SLOW);

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("audit through the binaries", () => {
  it("when `secretd serve` gets SIGTERM right after calls, then their events are stored and in the audit file", { timeout: SLOW }, async () => {
    const srv = await serve(dataDir, ["--audit-file", auditFile]);
    devToken = srv.token;
    const client = new SecretServiceClient(srv.address, credentials.createInsecure());
    await unary<CreateSecretRequest, unknown>(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: "default", name: "db-password", stringData: { password: VALUE } }), devToken, "rid-cli-create");
    await unary<GetSecretRequest, unknown>(client, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "db-password" }), devToken, "rid-cli-get");
    await expect(unary<GetSecretRequest, unknown>(client, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "nope" }), devToken, "rid-cli-missing")).rejects.toThrow(/NOT_FOUND/);
    client.close();
    const exited = new Promise<number | null>((resolve) => srv.child.once("exit", (code) => resolve(code)));
    srv.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const lines = readFileSync(auditFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.requestId)).toEqual(["rid-cli-create", "rid-cli-get", "rid-cli-missing"]);
    expect(lines[1]).toMatchObject({ tenant: "dev", sub: "dev-admin", method: "GetSecret", name: "db-password", version: 1, keys: ["password"], code: "OK", stage: "current" });
    // A call that read no version has no `version`, here as in `secretd audit -o json`.
    expect(lines[2]).toMatchObject({ method: "GetSecret", name: "nope", code: "NOT_FOUND" });
    expect(lines[2]).not.toHaveProperty("version");
    expect(lines[2]).not.toHaveProperty("stage");
    expect(readFileSync(auditFile, "utf8")).not.toContain(VALUE);
    expect(srv.stderr()).not.toContain(VALUE);

    // The same data dir served again (same dev key): the stored trail has both events.
    server = await startTestServer({ dataDir });
    plainToken = await server.token({ tenant: "dev", sub: "dev-user", roles: ["data-developer"] });
  });

  it("when `secretd audit` runs with filters, then it prints the matching events as json, yaml or a table", { timeout: SLOW }, async () => {
    const env = { SECRETD_SERVER: server.address, SECRETD_TOKEN: devToken };
    const json = await run(["audit", "--secret", "db-password", "--sub", "dev-admin", "--since", "1h", "-o", "json"], env);
    expect(json.err).toBe("");
    expect(json.status).toBe(0);
    const doc = JSON.parse(json.out) as { events: Array<Record<string, unknown>> };
    expect(doc.events.map((e) => e.requestId)).toEqual(["rid-cli-create", "rid-cli-get"]);
    expect(doc.events[1]).toMatchObject({ method: "GetSecret", sub: "dev-admin", mesh: "default", name: "db-password", version: 1, keys: ["password"], code: "OK", stage: "current" });

    const missing = JSON.parse((await run(["audit", "--secret", "nope", "-o", "json"], env)).out) as { events: Array<Record<string, unknown>> };
    expect(missing.events).toHaveLength(1);
    expect(missing.events[0]).toMatchObject({ requestId: "rid-cli-missing", code: "NOT_FOUND" });
    expect(missing.events[0]).not.toHaveProperty("version");

    const yaml = await run(["audit", "--mesh", "default", "-o", "yaml", "--page-size", "1", "--all"], env);
    expect(yaml.status).toBe(0);
    expect((parseYaml(yaml.out) as { events: unknown[] }).events).toHaveLength(3);

    const onePage = await run(["audit", "--page-size", "1"], env);
    expect(onePage.status).toBe(0);
    expect(onePage.out.split("\n")[0]).toMatch(/^TIME\s+METHOD\s+CODE\s+SUB\s+MESH\s+NAME\s+VERSION\s+STAGE\s+KEYS\s+PEER\s+REQUEST_ID$/);
    const table = await run(["audit", "--secret", "db-password"], env);
    expect(table.status).toBe(0);
    expect(table.out.split("\n").find((l) => l.includes("rid-cli-get"))).toMatch(/\sGetSecret\s+OK\s+dev-admin\s+default\s+db-password\s+1\s+current\s+password\s/);
    expect(onePage.out).toContain("rid-cli-create");
    expect(onePage.err).toMatch(/more events: add --all, or --page-token \S+/);

    const none = await run(["audit", "--secret", "other", "--until", "2000-01-01T00:00:00Z"], env);
    expect(none.status).toBe(0);
    expect(none.err).toBe("no audit events\n");
    for (const r of [json, yaml, onePage, table, none]) {
      expect(r.out + r.err).not.toContain(VALUE);
      expect(r.out + r.err).not.toContain(devToken);
    }
  });

  it("when `secretd audit` runs without tenant-admin or with a bad --since, then it exits 1 or 2 with the reason", { timeout: SLOW }, async () => {
    const denied = await run(["audit"], { SECRETD_SERVER: server.address, SECRETD_TOKEN: plainToken });
    expect(denied.status).toBe(1);
    expect(denied.err).toMatch(/^secretd: PERMISSION_DENIED: .*tenant-admin/);
    const bad = await run(["audit", "--since", "yesterday"], { SECRETD_SERVER: server.address, SECRETD_TOKEN: devToken });
    expect(bad.status).toBe(2);
    expect(bad.err).toMatch(/--since/);
  });

  it("when `secretd serve --workers 2` gets SIGTERM right after calls served by both workers, then every event is stored once and in the audit file once", { timeout: SLOW }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-audit-workers-"));
    const file = path.join(dir, "audit.jsonl");
    const clients: SecretServiceClient[] = [];
    try {
      const srv = await serve(dir, ["--workers", "2", "--audit-file", file, "--metrics-listen", "127.0.0.1:0"], "info");
      // The banner comes from the first worker; the primary says when the second serves too.
      for (let i = 0; i < 600 && !srv.stdout().includes('"msg":"secretd serving with workers"'); i++) await new Promise((r) => setTimeout(r, 50));
      // One connection per client (a private subchannel pool): the primary deals connections to workers.
      const client = (): SecretServiceClient => {
        const c = new SecretServiceClient(srv.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
        clients.push(c);
        return c;
      };
      const rids: string[] = [];
      await unary<CreateSecretRequest, unknown>(client(), "createSecret", CreateSecretRequest.fromPartial({ mesh: "default", name: "wk-secret-q7", stringData: { password: VALUE } }), srv.token, "rid-w-create");
      rids.push("rid-w-create");
      for (let i = 0; i < 8; i++) {
        await unary<GetSecretRequest, unknown>(client(), "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "wk-secret-q7" }), srv.token, `rid-w-get-${i}`);
        rids.push(`rid-w-get-${i}`);
      }
      for (const c of clients) c.close();
      // --metrics-listen with workers: the primary serves the sum of both workers' series.
      const primary = srv.stdout().split("\n").find((l) => l.includes('"msg":"secretd serving with workers"'))!;
      const metricsAddress = (JSON.parse(primary) as { metrics: string }).metrics;
      const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
      const gets = /^grpc_server_handled_total\{[^}]*grpc_method="GetSecret"[^}]*grpc_code="OK"[^}]*\} (\d+)$/m.exec(text);
      expect(Number(gets?.[1])).toBe(8);
      expect(text).toMatch(/^secretd_kek_active_info\{kek_id="[^"]+"\} 1$/m);
      for (const needle of [VALUE, srv.token, "wk-secret-q7"]) expect(text).not.toContain(needle);
      const exited = new Promise<number | null>((resolve) => srv.child.once("exit", (code) => resolve(code)));
      srv.child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const access = srv.stdout().split("\n").filter((l) => l.includes('"rid":"rid-w-')).map((l) => JSON.parse(l) as { worker: number });
      expect(new Set(access.map((l) => l.worker)).size).toBe(2); // both workers served (and each flushed its own queue)
      const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l.requestId).sort()).toEqual([...rids].sort());
      const again = await startTestServer({ dataDir: dir });
      try {
        const admin = await again.token({ tenant: "dev", sub: "dev-admin", roles: ["tenant-admin"] });
        const page = await again.call<ListAuditEventsResponse>("listAuditEvents", { name: "wk-secret-q7", pageSize: 100 }, admin);
        expect(page.events.map((e) => e.requestId).sort()).toEqual([...rids].sort());
      } finally {
        await again.stop();
      }
      expect(readFileSync(file, "utf8")).not.toContain(VALUE);
      expect(srv.stdout() + srv.stderr()).not.toContain(VALUE);
    } finally {
      for (const c of clients) c.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
