/**
 * `secretd serve --workers 2` as a user runs it: two processes on one port over one
 * SQLite file. New connections spread over both; a write through one worker is read
 * through the other (its read cache hears of it on the change feed) and reaches a watch
 * on the other; a worker killed with SIGKILL is restarted while the other serves; SIGTERM
 * drains both and the primary exits 0.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readHs256Secret } from "../../src/auth/keys.js";
import { mintToken } from "../../src/auth/mint.js";
import { CreateSecretRequest, GetSecretRequest, SecretServiceClient, UpdateSecretRequest, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { parseServingLine } from "../../scripts/serving-line.mjs";
import { openWatch } from "../helpers/watch.js";

const MAIN = path.resolve("dist/main.js");
let dir: string;
let child: ChildProcessWithoutNullStreams;
const lines: string[] = [];
let port: number;
let token: string;
const clients: SecretServiceClient[] = [];

async function until<T>(f: () => T | undefined, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 25));
  }
}

const logged = (): Array<Record<string, unknown>> => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

/** A client on a connection of its own (a private subchannel pool), so the primary deals it to some worker. */
function newClient(): SecretServiceClient {
  const c = new SecretServiceClient(`127.0.0.1:${port}`, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  clients.push(c);
  return c;
}

function call<Res>(c: SecretServiceClient, method: "createSecret" | "getSecret" | "updateSecret", req: unknown, rid: string): Promise<Res> {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  md.set("x-request-id", rid);
  const fn = (c as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method]!;
  return new Promise((resolve, reject) => fn.call(c, req, md, (e, r) => (e ? reject(e) : resolve(r))));
}

/** Which worker served the call with this request id (from its access line; logs are flushed within a second). */
async function workerOf(rid: string): Promise<number> {
  const line = await until(() => logged().find((l) => l.rid === rid));
  return line.worker as number;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-workers-"));
  child = spawn(process.execPath, [MAIN, "serve", "--workers", "2", "--listen", "127.0.0.1:0", "--data-dir", dir], { env: { ...process.env, SECRETD_LOG_LEVEL: "info" } });
  let buf = "";
  child.stdout.on("data", (b: Buffer) => {
    buf += b.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts.filter((p) => p.trim() !== ""));
  });
  child.stderr.resume();
  const ready = await until(() => lines.map(parseServingLine).find((s) => s?.kind === "primary" && s.port !== undefined), 30_000);
  port = ready.port as number;
  token = await mintToken({ secret: readHs256Secret(path.join(dir, "jwt-dev.key")), tenant: "acme", sub: "alice", roles: ["tenant-admin"], ttlSec: 600 });
}, 60_000);

afterAll(() => {
  for (const c of clients) c.close();
  if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("secretd serve --workers 2", () => {
  it("when both workers start, then each serves on the one port and the first alone created the dev keys", async () => {
    const serving = await until(() => {
      const s = logged().filter((l) => l.msg === "secretd serving");
      return s.length >= 2 ? s : undefined;
    });
    expect(new Set(serving.map((l) => l.worker))).toEqual(new Set([1, 2]));
    expect(new Set(serving.map((l) => l.listen)).size).toBe(1);
    const created = logged().filter((l) => typeof l.msg === "string" && /^created/.test(l.msg));
    expect(created.length).toBeGreaterThan(0);
    expect(created.every((l) => l.worker === 1)).toBe(true);
  });

  it("when a worker writes, then a connection on the other worker reads it (after caching the old value) and a watch there sees it", async () => {
    const a = newClient();
    await call(a, "createSecret", CreateSecretRequest.fromPartial({ mesh: "default", name: "shared", stringData: { k: "one" } }), "create-shared");
    const wa = await workerOf("create-shared");
    // Find a connection the primary dealt to the other worker.
    let b: SecretServiceClient | undefined;
    for (let i = 0; i < 20 && b === undefined; i++) {
      const c = newClient();
      await call(c, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "shared" }), `probe-${i}`);
      if ((await workerOf(`probe-${i}`)) !== wa) b = c;
    }
    expect(b, "no connection reached the second worker").toBeDefined();
    const watch = openWatch(b!, { mesh: "default", items: [{ name: "shared" }] }, token);
    try {
      expect(Buffer.from((await watch.next()).values[0]!.value).toString()).toBe("one");
      const cur = await call<Secret>(a, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "shared" }), "get-a");
      await call(a, "updateSecret", UpdateSecretRequest.fromPartial({ mesh: "default", name: "shared", etag: cur.etag, stringData: { k: "two" } }), "update-a");
      expect(Buffer.from((await watch.next()).values[0]!.value).toString()).toBe("two");
      let seen = "";
      for (let i = 0; i < 100 && seen !== "two"; i++) {
        const got = await call<Secret>(b!, "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "shared" }), `read-b-${i}`);
        seen = Buffer.from(got.data.k!).toString();
        if (seen !== "two") await new Promise((r) => setTimeout(r, 20));
      }
      expect(seen).toBe("two");
    } finally {
      watch.cancel();
    }
  });

  it("when a worker is killed, then it is restarted while the other serves, and SIGTERM then drains both with exit 0", async () => {
    const victim = logged().find((l) => l.msg === "secretd serving" && l.worker === 2)!;
    process.kill(victim.pid as number, "SIGKILL");
    await until(() => logged().find((l) => l.msg === "worker died: restarting it"));
    // Meanwhile and after, new connections are served.
    for (let i = 0; i < 5; i++) await call(newClient(), "getSecret", GetSecretRequest.fromPartial({ mesh: "default", name: "shared" }), `after-kill-${i}`);
    await until(() => logged().find((l) => l.msg === "worker restarted"));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    await new Promise((r) => setTimeout(r, 100));
    const stopped = logged().filter((l) => l.msg === "stopped");
    expect(stopped.some((l) => l.role === "primary")).toBe(true);
    expect(stopped.filter((l) => typeof l.worker === "number")).toHaveLength(2);
    expect(lines.join("\n")).not.toContain(token);
  });
});
