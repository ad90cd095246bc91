/**
 * SPEC §7: "every read verb takes -o json|yaml" (get, list, list-grants, consumers, audit, project, apply). Each read verb of the real binary, run
 * against the real server with -o json and -o yaml, prints one document that parses and
 * holds what the verb read (and the two formats hold the same thing).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import type { ListAuditEventsResponse } from "../../src/gen/secrets/v1/secrets.js";
import { runCli } from "../helpers/cli.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const SLOW = 60_000;
let server: TestServer;
let dir: string;
let token: string;

beforeAll(async () => {
  server = await startTestServer();
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-read-verbs-"));
  token = await server.token({ tenant: "acme", sub: "olivia", roles: ["tenant-admin"] });
  await server.call("createSecret", { mesh: "default", name: "db", stringData: { password: "read-verb-pw" }, labels: { app: "db" } }, token);
  await server.call("grantAccess", { mesh: "default", name: "db", subject: "user:bob", permission: 1 }, token);
  // The audit trail is flushed within a second: wait for the two writes above, so `audit`
  // (first below, before any other call on db) sees the same events in both runs.
  for (let i = 0; ; i++) {
    const r = await server.call<ListAuditEventsResponse>("listAuditEvents", { name: "db" }, token);
    if (r.events.length >= 2) break;
    if (i > 100) throw new Error("audit events not flushed");
    await new Promise((res) => setTimeout(res, 50));
  }
  writeFileSync(path.join(dir, "p.yaml"), "mesh: default\nitems:\n  - name: db\n");
  writeFileSync(path.join(dir, "k8s.yaml"), "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    app: db\nstringData:\n  password: read-verb-pw\n");
}, SLOW);

afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** verb args → what the parsed document must hold. */
const VERBS: Array<[string, string[], (doc: unknown) => void]> = [
  ["audit", ["audit", "--secret", "db"], (d) => expect(JSON.stringify(d)).toMatch(/"method":"CreateSecret".*"method":"GrantAccess"/)],
  ["get", ["get", "db", "--mesh", "default"], (d) => expect(d).toMatchObject({ name: "db", mesh: "default", data: { password: "read-verb-pw" } })],
  ["list", ["list", "--mesh", "default"], (d) => expect(JSON.stringify(d)).toContain('"name":"db"')],
  ["list-grants", ["list-grants", "db", "--mesh", "default"], (d) => expect(JSON.stringify(d)).toContain('"subject":"user:bob"')],
  ["consumers", ["consumers", "db", "--mesh", "default"], (d) => expect(JSON.stringify(d)).toMatch(/consumers|\[\]/)],
  ["project", ["project", "--projection", "p.yaml"], (d) => expect(JSON.stringify(d)).toContain('"env":"PASSWORD"')],
  ["project --dry-run", ["project", "--projection", "p.yaml", "--dry-run"], (d) => expect(JSON.stringify(d)).not.toContain("read-verb-pw")],
  ["apply --dry-run", ["apply", "-f", "k8s.yaml", "--mesh", "default", "--dry-run"], (d) => expect(JSON.stringify(d)).toContain("db")],
];

describe("every read verb takes -o json|yaml", () => {
  for (const [what, args, holds] of VERBS) {
    it(`when ${what} is run with -o json and -o yaml, then each prints one document that parses and holds the same`, async () => {
      const env = { SECRETD_SERVER: server.address, SECRETD_TOKEN: token };
      const j = await runCli([...args, "-o", "json"], { env, cwd: dir });
      expect(j.err).toBe("");
      expect(j.status).toBe(0);
      const y = await runCli([...args, "-o", "yaml"], { env, cwd: dir });
      expect(y.err).toBe("");
      expect(y.status).toBe(0);
      const fromJson: unknown = JSON.parse(j.out);
      holds(fromJson);
      const strip = (d: unknown): unknown => JSON.parse(JSON.stringify(d, (k, v: unknown) => (/time$/i.test(k) || k === "since" || k === "lastSeen" ? undefined : v)));
      expect(strip(parseYaml(y.out))).toEqual(strip(fromJson));
      expect(j.out + y.out).not.toContain(token);
    }, SLOW);
  }
});

describe("stages in -o yaml (#30 item 3)", () => {
  it("when a secret was rotated keeping its previous version, then get -o yaml names each version's stage, and apply -o yaml the stage it wrote", async () => {
    const env = { SECRETD_SERVER: server.address, SECRETD_TOKEN: token };
    const s = await server.call<{ etag: string }>("createSecret", { mesh: "default", name: "staged", stringData: { password: "stage-pw-1" } }, token);
    await server.call("rotateSecret", { mesh: "default", name: "staged", etag: s.etag, stringData: { password: "stage-pw-2" }, retire: 2 /* NEVER */ }, token);
    const yaml = async (args: string[]): Promise<Record<string, unknown>> => {
      const r = await runCli([...args, "-o", "yaml"], { env, cwd: dir });
      expect(r.err).toBe("");
      expect(r.status).toBe(0);
      return parseYaml(r.out) as Record<string, unknown>;
    };
    expect(await yaml(["get", "staged", "--mesh", "default"])).toMatchObject({ version: 2, stage: "current" });
    expect(await yaml(["get", "staged", "--mesh", "default", "--stage", "previous"])).toMatchObject({ version: 1, stage: "previous" });
    // By its number, the version the rotation keeps still says it is previous.
    expect(await yaml(["get", "staged", "--mesh", "default", "--version", "1"])).toMatchObject({ version: 1, stage: "previous" });
    writeFileSync(path.join(dir, "staged.yaml"), "apiVersion: v1\nkind: Secret\nmetadata:\n  name: staged\nstringData:\n  password: stage-pw-3\n");
    const applied = await yaml(["apply", "-f", "staged.yaml", "--mesh", "default"]);
    expect(JSON.stringify(applied)).toMatch(/"version":3,"stage":"current"/);
  }, SLOW);
});
