/**
 * Issue #15 items 8–10, through the real server and the real `secretd` binary:
 * reviving an expired secret with an update (and --etag with --force refused), updates
 * that change nothing (no new version, no old version pushed out, decided by the
 * server), and grants: unknown keys refused, a replaced grant said so in the reply.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { Permission, type Grant, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const MAIN = path.resolve("dist/main.js");
const M = "edges";
/** Each CLI run is a fresh Node process (~0.5 s). */
const SLOW = 60_000;

interface Run {
  status: number | null;
  out: string;
  err: string;
}

let s: TestServer;
let owner: string;
let bob: string;

beforeAll(async () => {
  s = await startTestServer({ maxVersions: "3" });
  owner = await s.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  bob = await s.token({ tenant: "acme", sub: "bob", roles: [] });
});

afterAll(async () => {
  await s?.stop();
});

/** Runs `secretd <args> --mesh M` as `token`, asynchronously (the server lives in this process). */
function secretd(args: string[], token = owner): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, SECRETD_SERVER: s.address, SECRETD_TOKEN: token };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args, "--mesh", M], { env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) => resolve({ status: code, out: Buffer.concat(out).toString("utf8"), err: Buffer.concat(err).toString("utf8") }));
  });
}

async function expiredSecret(name: string): Promise<void> {
  await s.call("createSecret", { mesh: M, name, stringData: { a: "alpha" }, expireTime: new Date(s.clock.now() + s.clock.lapseMs) }, owner);
  await s.clock.advance(s.clock.lapseMs + 100);
  expect(await codeOf(s.call("getSecret", { mesh: M, name }, owner))).toBe(status.FAILED_PRECONDITION);
}

async function current(name: string): Promise<Secret> {
  return s.call<Secret>("getSecret", { mesh: M, name }, owner);
}

describe("reviving an expired secret (#15.8)", () => {
  it(
    "when `update --force --ttl` targets an expired secret, then its expire_time moves and it is served again",
    async () => {
      await expiredSecret("revive");
      const r = await secretd(["update", "revive", "--force", "--ttl", "1h"]);
      expect(r.err).toBe("");
      expect(r.status).toBe(0);
      const got = await current("revive");
      expect(got.version).toBe(2);
      expect(got.expireTime!.getTime()).toBeGreaterThan(Date.now() + 3_000_000);
      expect(Buffer.from(got.data.a!).toString()).toBe("alpha");
    },
    SLOW,
  );

  it(
    "when `update --force --clear expire_time` targets an expired secret, then its expire_time is cleared",
    async () => {
      await expiredSecret("clear");
      const r = await secretd(["update", "clear", "--force", "--clear", "expire_time"]);
      expect(r.err).toBe("");
      expect(r.status).toBe(0);
      expect((await current("clear")).expireTime).toBeUndefined();
    },
    SLOW,
  );

  it("when UpdateSecret with the etag of an expired secret extends it, then the server accepts it", async () => {
    await s.call("createSecret", { mesh: M, name: "revive-rpc", stringData: { a: "alpha" }, expireTime: new Date(s.clock.now() + s.clock.lapseMs) }, owner);
    const { etag } = await current("revive-rpc");
    await s.clock.advance(s.clock.lapseMs + 100);
    const updated = await s.call<Secret>("updateSecret", { mesh: M, name: "revive-rpc", etag, expireTime: new Date(s.clock.now() + 60_000) }, owner);
    expect(updated.version).toBe(2);
    await current("revive-rpc");
  });

  it(
    "when --etag and --force are given together, then exit 2 naming both and nothing is written",
    async () => {
      await s.call("createSecret", { mesh: M, name: "both-flags", stringData: { a: "alpha" } }, owner);
      const { etag } = await current("both-flags");
      const r = await secretd(["update", "both-flags", "--etag", etag, "--force", "--description", "x"]);
      expect(r.status).toBe(2);
      expect(r.err).toMatch(/^secretd: INVALID_ARGUMENT: --force.*--etag/);
      expect((await current("both-flags")).version).toBe(1);
    },
    SLOW,
  );
});

describe("update --mask and --clear (#26.2)", () => {
  async function masked(name: string): Promise<Secret> {
    await s.call("createSecret", { mesh: M, name, stringData: { url: "old" }, labels: { app: "old" }, description: "d" }, owner);
    return current(name);
  }

  it(
    "when a flag sets a field outside --mask, then exit 2 naming the flag and the mask, and nothing is written",
    async () => {
      await masked("mask-outside");
      const data = await secretd(["update", "mask-outside", "--force", "--from-literal", "url=new", "--mask", "labels"]);
      expect(data.status).toBe(2);
      expect(data.err).toBe("secretd: INVALID_ARGUMENT: --from-literal: sets data, which --mask labels leaves out: add data to --mask, or drop --from-literal\n");
      const label = await secretd(["update", "mask-outside", "--force", "--label", "app=new", "--mask", "data"]);
      expect(label.status).toBe(2);
      expect(label.err).toContain("--label: sets labels, which --mask data leaves out");
      const got = await current("mask-outside");
      expect(got).toMatchObject({ version: 1, labels: { app: "old" } });
      expect(Buffer.from(got.data.url!).toString()).toBe("old");
    },
    SLOW,
  );

  it(
    "when a --mask path has no flag giving it, then exit 2 unless --clear names it; --clear then writes it empty on purpose",
    async () => {
      await masked("mask-empty");
      const r = await secretd(["update", "mask-empty", "--force", "--label", "app=new", "--mask", "labels,data"]);
      expect(r.status).toBe(2);
      expect(r.err).toContain("--mask: data is in the mask but no --from-literal or --from-file gives it: give one, or --clear data");
      expect((await current("mask-empty")).version).toBe(1);

      const labels = await secretd(["update", "mask-empty", "--force", "--clear", "labels"]);
      expect(labels.err).toBe("");
      const afterLabels = await current("mask-empty");
      expect(afterLabels).toMatchObject({ labels: {}, description: "d", keys: ["url"] });

      const both = await secretd(["update", "mask-empty", "--force", "--from-literal", "url=new", "--clear", "data"]);
      expect(both.status).toBe(2);
      expect(both.err).toContain("--clear: data cannot be cleared and set by --from-literal at once");

      const ok = await secretd(["update", "mask-empty", "--force", "--from-literal", "url=new", "--mask", "data"]);
      expect(ok.err).toBe("");
      expect(ok.status).toBe(0);
      const got = await current("mask-empty");
      expect(Buffer.from(got.data.url!).toString()).toBe("new");
      expect(got.labels).toEqual({});
    },
    SLOW,
  );
});

describe("updates that change nothing (#15.9)", () => {
  it(
    "when `update --force` gives no field, then the current version is returned, no new one is written, and it says so",
    async () => {
      await s.call("createSecret", { mesh: M, name: "noop-cli", stringData: { a: "alpha" } }, owner);
      const before = await current("noop-cli");
      const r = await secretd(["update", "noop-cli", "--force", "-o", "json"]);
      expect(r.status).toBe(0);
      expect(r.err).toContain('secret "noop-cli" unchanged: version 1 kept');
      expect(JSON.parse(r.out)).toMatchObject({ version: 1, etag: before.etag });
      expect((await current("noop-cli")).etag).toBe(before.etag);
    },
    SLOW,
  );

  it("when UpdateSecret sends the same values and metadata again and again, then no version is added and old versions stay readable", async () => {
    const fields = { stringData: { a: "v1" }, description: "d", labels: { app: "web" }, annotations: { note: "n" } };
    await s.call("createSecret", { mesh: M, name: "noop-rpc", ...fields }, owner);
    await s.call("updateSecret", { mesh: M, name: "noop-rpc", etag: (await current("noop-rpc")).etag, stringData: { a: "v2" } }, owner);
    const v2 = await current("noop-rpc");
    // max_versions is 3 on this server: four real updates would push version 1 out.
    for (let i = 0; i < 4; i++) {
      const same = await s.call<Secret>("updateSecret", { mesh: M, name: "noop-rpc", etag: v2.etag, ...fields, stringData: { a: "v2" } }, owner);
      expect(same).toMatchObject({ version: 2, etag: v2.etag });
    }
    const v1 = await s.call<Secret>("getSecret", { mesh: M, name: "noop-rpc", version: 1 }, owner);
    expect(Buffer.from(v1.data.a!).toString()).toBe("v1");
    // A stale etag is still refused, change or not.
    expect(await codeOf(s.call("updateSecret", { mesh: M, name: "noop-rpc", etag: "stale", description: "d" }, owner))).toBe(status.ABORTED);
  });
});

describe("grants: unknown keys and replacement (#15.10)", () => {
  it("when a grant names keys the secret lacks, then INVALID_ARGUMENT naming them, and no grant is stored", async () => {
    await s.call("createSecret", { mesh: M, name: "unknown-keys", stringData: { a: "alpha" } }, owner);
    const req = { mesh: M, name: "unknown-keys", subject: "user:bob", permission: Permission.PERMISSION_READ, keys: ["a", "nope", "gone"] };
    const err = await s.call("grantAccess", req, owner).then(
      () => undefined,
      (e: { code: number; details: string }) => e,
    );
    expect(err?.code).toBe(status.INVALID_ARGUMENT);
    expect(err?.details).toContain('"nope"');
    expect(err?.details).toContain('"gone"');
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "unknown-keys" }, bob))).toBe(status.NOT_FOUND);
  });

  it(
    "when the CLI grants a key the secret lacks, then the server refuses it (exit 1, SPEC §7) naming the key",
    async () => {
      await s.call("createSecret", { mesh: M, name: "unknown-cli", stringData: { a: "alpha" } }, owner);
      const r = await secretd(["grant", "unknown-cli", "--subject", "user:bob", "--permission", "read", "--key", "passwrod"]);
      expect(r.status).toBe(1);
      expect(r.err).toMatch(/^secretd: INVALID_ARGUMENT: keys: .*"passwrod"/);
    },
    SLOW,
  );

  it("when a subject is granted the same permission again, then the reply carries the grant it replaced; a new grant has none", async () => {
    await s.call("createSecret", { mesh: M, name: "regrant", stringData: { a: "alpha", b: "beta" } }, owner);
    const first = await s.call<Grant>("grantAccess", { mesh: M, name: "regrant", subject: "user:bob", permission: Permission.PERMISSION_READ }, owner);
    expect(first.replaced).toBeUndefined();
    const second = await s.call<Grant>("grantAccess", { mesh: M, name: "regrant", subject: "user:bob", permission: Permission.PERMISSION_READ, keys: ["a"] }, owner);
    expect(second.keys).toEqual(["a"]);
    expect(second.replaced).toMatchObject({ subject: "user:bob", permission: Permission.PERMISSION_READ, keys: [] });
  });

  it(
    "when the CLI re-grants a narrower grant, then it says on stderr which grant it replaced and the output holds it",
    async () => {
      await s.call("createSecret", { mesh: M, name: "regrant-cli", stringData: { a: "alpha", b: "beta" } }, owner);
      const args = ["grant", "regrant-cli", "--subject", "user:bob", "--permission", "read"];
      const first = await secretd(args);
      expect(first.status).toBe(0);
      expect(first.err).toBe("");
      const second = await secretd([...args, "--key", "a"]);
      expect(second.status).toBe(0);
      expect(second.err).toBe("replaced the read grant of user:bob (every key, no expiry)\n");
      const doc = parseYaml(second.out) as { keys: string[]; replaced: { subject: string; permission: string } };
      expect(doc.keys).toEqual(["a"]);
      expect(doc.replaced).toMatchObject({ subject: "user:bob", permission: "read" });
    },
    SLOW,
  );
});
