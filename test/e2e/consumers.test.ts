/**
 * Consumers (SPEC §4): every open WatchProjection is a live consumer of each secret it
 * reads, recorded as a lease in storage. DeleteSecret of a watched secret is refused
 * unless forced; ListConsumers shows who, to those who may delete. And the change feed
 * across processes: a second real `secretd serve` process on the same SQLite file sees
 * writes made through the first, and its watches count as consumers there.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, SecretServiceClient, type ListConsumersResponse, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";
import { eventually } from "../conformance/storage-suite.js";

const MESH = "m";
let s: TestServer;
let owner: string;
let seq = 0;

const fresh = (p: string): string => `${p}-${++seq}`;
const values = (p: Projection): Record<string, string> => Object.fromEntries(p.values.map((v) => [v.env, Buffer.from(v.value).toString()]));

beforeAll(async () => {
  s = await startTestServer();
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
});

afterAll(async () => {
  await s.stop();
});

describe("consumers", () => {
  it("when a secret is watched, then ListConsumers shows the watcher to the owner, an ADMIN grantee and a tenant-admin, and to nobody else", async () => {
    const name = fresh("watched");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:pete", permission: Permission.PERMISSION_PROJECT }, owner);
    await s.call("grantAccess", { mesh: MESH, name, subject: "user:adam", permission: Permission.PERMISSION_ADMIN }, owner);
    const pete = await s.token({ tenant: "acme", sub: "pete", roles: ["sidecar"] });
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, pete);
    const first = await w.next();

    const adam = await s.token({ tenant: "acme", sub: "adam", roles: [] });
    const admin = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
    for (const tok of [owner, adam, admin]) {
      const { consumers } = await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, tok);
      expect(consumers).toHaveLength(1);
      expect(consumers[0]).toMatchObject({ sub: "pete", roles: ["sidecar"], revision: first.revision });
      expect(consumers[0]!.replica).not.toBe("");
      expect(consumers[0]!.since!.getTime()).toBeLessThanOrEqual(Date.now());
    }
    expect(await codeOf(s.call("listConsumers", { mesh: MESH, name }, pete))).toBe(status.PERMISSION_DENIED);
    const stranger = await s.token({ tenant: "acme", sub: "sam", roles: ["data-developer"] });
    expect(await codeOf(s.call("listConsumers", { mesh: MESH, name }, stranger))).toBe(status.NOT_FOUND);
    const otherTenant = await s.token({ tenant: "globex", sub: "olivia", roles: ["tenant-admin"] });
    expect(await codeOf(s.call("listConsumers", { mesh: MESH, name }, otherTenant))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("listConsumers", { mesh: MESH, name: "Not_Valid" }, owner))).toBe(status.INVALID_ARGUMENT);
    w.cancel();
  });

  it("when a watched secret is deleted, then it is refused with FAILED_PRECONDITION; forced, it goes and the watch ends with NOT_FOUND", async () => {
    const name = fresh("in-use");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    const a = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const b = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    await a.next();
    await b.next();
    const refused = await s.call("deleteSecret", { mesh: MESH, name }, owner).catch((e: { code: number; details: string }) => e);
    expect(refused).toMatchObject({ code: status.FAILED_PRECONDITION });
    expect((refused as { details: string }).details).toContain("in use by 2 live consumers");
    expect((await s.call<Secret>("getSecret", { mesh: MESH, name }, owner)).name).toBe(name);
    await s.call("deleteSecret", { mesh: MESH, name, force: true }, owner);
    expect((await a.ended()).code).toBe(status.NOT_FOUND);
    expect((await b.ended()).code).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getSecret", { mesh: MESH, name }, owner))).toBe(status.NOT_FOUND);
  });

  it("when the last watcher goes away, then the secret is no longer in use and deletes without force", async () => {
    const name = fresh("released");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    await w.next();
    w.cancel();
    await eventually(async () => (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner)).consumers.length === 0);
    await s.call("deleteSecret", { mesh: MESH, name }, owner);
  });
});

/** Runs the real `secretd` binary against the test server (asynchronously: the server lives in this process). */
function secretd(args: string[], token: string): Promise<{ status: number | null; out: string; err: string }> {
  const env = { ...process.env, SECRETD_SERVER: s.address, SECRETD_TOKEN: token };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve("dist/main.js"), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, out, err }));
  });
}

describe("secretd consumers / delete --force", () => {
  it("when a secret is watched, then `consumers NAME` lists the watcher, `delete` exits 1 naming the consumers, and `delete --force` deletes it", async () => {
    const name = fresh("cli");
    await s.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
    const w = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
    const first = await w.next();
    const table = await secretd(["consumers", name, "--mesh", MESH], owner);
    expect(table.status).toBe(0);
    expect(table.out).toMatch(/^SUB\s+ROLES\s+REVISION/);
    expect(table.out).toContain("olivia");
    const json = await secretd(["consumers", name, "--mesh", MESH, "-o", "json"], owner);
    const doc = JSON.parse(json.out) as { consumers: Array<{ sub: string; revision: string }> };
    expect(doc.consumers).toEqual([expect.objectContaining({ sub: "olivia", revision: first.revision })]);
    const refused = await secretd(["delete", name, "--mesh", MESH], owner);
    expect(refused.status).toBe(1);
    expect(refused.err).toContain("FAILED_PRECONDITION");
    expect(refused.err).toContain("in use by 1 live consumers");
    const forced = await secretd(["delete", name, "--mesh", MESH, "--force"], owner);
    expect(forced.status).toBe(0);
    expect((await w.ended()).code).toBe(status.NOT_FOUND);
    const gone = await secretd(["consumers", name, "--mesh", MESH], owner);
    expect(gone.status).toBe(1);
    expect(gone.err).toContain("NOT_FOUND");
  }, 60_000);
});

interface Child {
  child: ChildProcessWithoutNullStreams;
  client: SecretServiceClient;
}

async function serveSecond(dataDir: string): Promise<Child> {
  const main = path.resolve("dist/main.js");
  // On PostgreSQL (test:postgres), the second process is a replica on the first one's database.
  const db = s.config.databaseUrl === "" ? [] : ["--database-url", s.config.databaseUrl];
  const child = spawn(process.execPath, [main, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--dev-token", "always", ...db], { env: { ...process.env, SECRETD_LOG_LEVEL: "warn" } });
  let err = "";
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  child.stdout.resume();
  await eventually(() => {
    if (child.exitCode !== null) throw new Error(`second server exited: ${err}`);
    return /serving on (\S+) /.test(err);
  }, 15_000);
  const address = /serving on (\S+) /.exec(err)![1]!;
  return { child, client: new SecretServiceClient(address, credentials.createInsecure()) };
}

describe("two server processes on one SQLite file (or one PostgreSQL database)", () => {
  it("when a secret is written through one, then a watch on the other sees it, and each one's watchers are consumers on both", async () => {
    const second = await serveSecond(s.dataDir);
    try {
      const name = fresh("shared");
      await s.call("createSecret", { mesh: MESH, name, stringData: { v: "one" } }, owner);
      const remote = openWatch(second.client, { mesh: MESH, items: [{ name }] }, owner);
      expect(values(await remote.next())).toEqual({ V: "one" });
      const local = openWatch(s.client, { mesh: MESH, items: [{ name }] }, owner);
      await local.next();

      const cur = await s.call<Secret>("getSecret", { mesh: MESH, name }, owner);
      await s.call("updateSecret", { mesh: MESH, name, etag: cur.etag, stringData: { v: "two" }, updateMask: ["data"] }, owner);
      expect(values(await remote.next())).toEqual({ V: "two" });
      expect(values(await local.next())).toEqual({ V: "two" });

      const { consumers } = await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner);
      expect(new Set(consumers.map((c) => c.replica)).size).toBe(2);
      local.cancel();
      await eventually(async () => (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner)).consumers.length === 1);
      const refused = await codeOf(s.call("deleteSecret", { mesh: MESH, name }, owner));
      expect(refused).toBe(status.FAILED_PRECONDITION); // the other process's watcher still holds it

      // SIGTERM: the second server ends its watches with UNAVAILABLE and removes its leases.
      second.child.kill("SIGTERM");
      expect((await remote.ended()).code).toBe(status.UNAVAILABLE);
      await new Promise((r) => second.child.once("exit", r));
      await s.call("deleteSecret", { mesh: MESH, name }, owner);
    } finally {
      second.client.close();
      if (second.child.exitCode === null) second.child.kill("SIGKILL");
    }
  });
});
