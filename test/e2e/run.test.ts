/**
 * `secretd run` as a real process against the real server: the environment CMD gets,
 * the exit code run returns, the signals it forwards, and restarts on change.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { runCli, startCli, waitFor, type CliProcess } from "../helpers/cli-process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "default";
const SLOW = 60_000;

let server: TestServer;
let work: string;
let token: string;
let tokenFile: string;
let n = 0;
const running: CliProcess[] = [];

beforeAll(async () => {
  server = await startTestServer();
  work = mkdtempSync(path.join(os.tmpdir(), "secretd-run-"));
  token = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  tokenFile = path.join(work, "token");
  writeFileSync(tokenFile, token);
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    await p.stop("SIGKILL");
    expect(p.stderr()).not.toContain(token);
  }
});

afterAll(async () => {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A fresh secret with these values and a projection file mapping key k to env APP_K. */
async function secretWith(data: Record<string, string | Buffer>): Promise<{ name: string; projection: string }> {
  n++;
  const name = `run${n}`;
  const bytes = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
  await server.call<Secret>("createSecret", { mesh: MESH, name, data: bytes }, token);
  const projection = path.join(work, `${name}.yaml`);
  writeFileSync(projection, `mesh: ${MESH}\nitems:\n  - name: ${name}\n    envPrefix: APP_\n`);
  return { name, projection };
}

async function update(name: string, data: Record<string, string>): Promise<void> {
  const cur = await server.call<Secret>("getSecret", { mesh: MESH, name }, token);
  const bytes = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
  await server.call("updateSecret", { mesh: MESH, name, etag: cur.etag, data: bytes }, token);
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, SECRETD_SERVER: server.address, SECRETD_TOKEN: token, ...extra };
}

/** A node one-liner as CMD. */
function node(script: string): string[] {
  return [process.execPath, "-e", script];
}

describe("secretd run", () => {
  it("when CMD runs, then it sees the values on top of run's own environment, without SECRETD_TOKEN, and run returns its exit code", async () => {
    const s = await secretWith({ user: "app", password: "p@ss 'w0rd'" });
    const r = await runCli(
      ["run", "--projection", s.projection, "--", ...node("console.log(JSON.stringify([process.env.APP_USER, process.env.APP_PASSWORD, process.env.KEEP_ME, process.env.SECRETD_TOKEN ?? null])); process.exit(7)")],
      env({ KEEP_ME: "kept" }),
    );
    expect(r.code, r.err).toBe(7);
    expect(JSON.parse(r.out)).toEqual(["app", "p@ss 'w0rd'", "kept", null]);
    expect(r.err).not.toContain("p@ss");
    expect(r.err).not.toContain(token);
  });

  it("when a writer adds keys whose derived names are identity, interpreter or proxy variables, then run refuses and CMD never runs; an explicit env mapping may still set them (#26.7, #26.15)", async () => {
    for (const key of ["user", "pythonwarnings", "browser", "https_proxy", "node_extra_ca_certs", "git_ssh_command", "ld_preload", "tz"]) {
      n++;
      const name = `run${n}`;
      await server.call<Secret>("createSecret", { mesh: MESH, name, data: { [key]: Buffer.from("x") } }, token);
      const projection = path.join(work, `${name}.yaml`);
      writeFileSync(projection, `mesh: ${MESH}\nitems:\n  - name: ${name}\n`);
      const r = await runCli(["run", "--projection", projection, "--", ...node('console.log("CMD RAN")')], env());
      expect(r.code, key).toBe(2);
      expect(r.out, key).not.toContain("CMD RAN");
      expect(r.err, key).toContain(`the derived env name "${key.toUpperCase()}"`);
    }
    n++;
    const name = `run${n}`;
    await server.call<Secret>("createSecret", { mesh: MESH, name, data: { user: Buffer.from("svc"), proxy: Buffer.from("http://127.0.0.1:9") } }, token);
    const projection = path.join(work, `${name}.yaml`);
    writeFileSync(projection, `mesh: ${MESH}\nitems:\n  - name: ${name}\n    keys:\n      - { key: user, path: user }\n      - { key: proxy, env: HTTPS_PROXY }\n`);
    const r = await runCli(["run", "--projection", projection, "--", ...node("console.log(JSON.stringify([process.env.USER ?? null, process.env.HTTPS_PROXY]))")], env({ USER: "me" }));
    expect(r.code, r.err).toBe(0);
    // The key mapped only to a path gives no USER; the explicit mapping is the operator's choice.
    expect(JSON.parse(r.out)).toEqual(["me", "http://127.0.0.1:9"]);
  });

  it("when run gets SIGTERM, then CMD gets it and run exits with the code CMD chose", async () => {
    const s = await secretWith({ a: "1" });
    const p = startCli(["run", "--projection", s.projection, "--", ...node('process.on("SIGTERM", () => { console.log("got SIGTERM"); process.exit(42); }); console.log("ready"); setInterval(() => {}, 1000)')], env());
    running.push(p);
    await waitFor("CMD to start", () => p.stdout().includes("ready"));
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(42);
    expect(p.stdout()).toContain("got SIGTERM");
  });

  it("when CMD is killed by a signal, then run exits 128 + its number", async () => {
    const s = await secretWith({ a: "1" });
    const r = await runCli(["run", "--projection", s.projection, "--", ...node('process.kill(process.pid, "SIGKILL")')], env());
    expect(r.code).toBe(128 + 9);
  });

  it("when CMD does not exist, then run exits 127 naming it", async () => {
    const s = await secretWith({ a: "1" });
    const r = await runCli(["run", "--projection", s.projection, "--", path.join(work, "no-such-command")], env());
    expect(r.code).toBe(127);
    expect(r.err).toContain("no-such-command: ENOENT");
  });

  it("when a value is binary, then run refuses with FAILED_PRECONDITION naming the key, and CMD never runs", async () => {
    const s = await secretWith({ blob: Buffer.from([0xff, 0x00, 0xfe]) });
    const marker = path.join(work, `${s.name}.ran`);
    const r = await runCli(["run", "--projection", s.projection, "--", ...node(`require("fs").writeFileSync(${JSON.stringify(marker)}, "x")`)], env());
    expect(r.code).toBe(1);
    expect(r.err).toContain('FAILED_PRECONDITION: secret "' + s.name + '" key "blob"');
    expect(() => readFileSync(marker)).toThrow();
  });

  it("when the projection file is bad or no command is given, then run exits 2", async () => {
    const bad = path.join(work, "bad.yaml");
    writeFileSync(bad, "items: 3\n");
    const r = await runCli(["run", "--projection", bad, "--", "true"], env());
    expect(r.code).toBe(2);
    expect(r.err).toContain("items");
    const none = await runCli(["run", "--projection", bad], env());
    expect(none.code).toBe(2);
  });

  it(
    "when --restart-on-change is given and the secret changes, then CMD is stopped and started again with the new values",
    async () => {
      const s = await secretWith({ v: "one" });
      const log = path.join(work, `${s.name}.log`);
      const script = `const fs = require("fs"); fs.appendFileSync(${JSON.stringify(log)}, process.env.APP_V + "\\n"); process.on("SIGTERM", () => { fs.appendFileSync(${JSON.stringify(log)}, "term\\n"); process.exit(0); }); setInterval(() => {}, 1000)`;
      const p = startCli(["run", "--projection", s.projection, "--restart-on-change", "--max-backoff", "1s", "--", ...node(script)], env());
      running.push(p);
      const lines = (): string[] => {
        try {
          return readFileSync(log, "utf8").trim().split("\n");
        } catch {
          return [];
        }
      };
      await waitFor("the first start", () => lines().length === 1);
      await update(s.name, { v: "two" });
      await waitFor("the restart", () => lines().length === 3);
      expect(lines()).toEqual(["one", "term", "two"]);
      p.child.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    },
    SLOW,
  );

  it(
    "when CMD ignores SIGTERM on a restart, then it is killed after the grace period and started again",
    async () => {
      const s = await secretWith({ v: "one" });
      const log = path.join(work, `${s.name}.log`);
      const script = `const fs = require("fs"); fs.writeFileSync(${JSON.stringify(log + ".pid")}, String(process.pid)); fs.appendFileSync(${JSON.stringify(log)}, process.env.APP_V + "\\n"); process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)`;
      const p = startCli(["run", "--projection", s.projection, "--restart-on-change", "--grace-period", "1s", "--", ...node(script)], env());
      running.push(p);
      const lines = (): string[] => {
        try {
          return readFileSync(log, "utf8").trim().split("\n");
        } catch {
          return [];
        }
      };
      await waitFor("the first start", () => lines().length === 1);
      await update(s.name, { v: "two" });
      await waitFor("the restart", () => lines().length === 2);
      expect(lines()).toEqual(["one", "two"]);
      // CMD ignores SIGTERM, so run's SIGTERM would never end it: kill it, then run ends with it.
      await waitFor("the new pid", () => readFileSync(`${log}.pid`, "utf8") !== "");
      process.kill(Number(readFileSync(`${log}.pid`, "utf8")), "SIGKILL");
      expect(await p.exited).toBe(128 + 9);
    },
    SLOW,
  );
});
