/**
 * Acknowledged delivery through the real clients (#30 items 1-2, SPEC §8): the sidecar
 * acks after the `..data` swap and a successful hook, not after a failing one; `run
 * --restart-on-change` acks once the restarted command stayed up --ack-after; `secretd
 * rollout status --wait` exits 0 once they applied, 1 on its timeout listing the
 * stragglers, and says when a consumer left.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ListConsumersResponse, Secret } from "../../src/gen/secrets/v1/secrets.js";
import { runCli, startCli, waitFor, type CliProcess } from "../helpers/cli-process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

const MESH = "default";
const SLOW = 60_000;
let server: TestServer;
let work: string;
let owner: string;
let n = 0;
const running: CliProcess[] = [];

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "secretd-rollout-"));
  server = await startTestServer();
  owner = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
});

afterEach(async () => {
  for (const p of running.splice(0)) await p.stop("SIGKILL");
});

afterAll(async () => {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, SECRETD_SERVER: server.address, SECRETD_MESH: MESH };
  delete e.SECRETD_TOKEN;
  return e;
}

interface Setup {
  name: string;
  dir: string;
  projection: string;
  tokenFile: string;
}

async function setup(): Promise<Setup> {
  const name = `r${++n}`;
  const base = path.join(work, name);
  mkdirSync(base);
  const dir = path.join(base, "out");
  const projection = path.join(base, "p.yaml");
  writeFileSync(projection, `mesh: ${MESH}\nitems:\n  - name: ${name}\n    env_prefix: APP_\n`);
  const tokenFile = path.join(base, "token");
  writeFileSync(tokenFile, `${owner}\n`);
  await server.call("createSecret", { mesh: MESH, name, stringData: { v: "1" } }, owner);
  return { name, dir, projection, tokenFile };
}

async function update(name: string, v: string): Promise<void> {
  const cur = await server.call<Secret>("getSecret", { mesh: MESH, name }, owner);
  await server.call("updateSecret", { mesh: MESH, name, etag: cur.etag, stringData: { v } }, owner);
}

/** The versions of the secret its live consumers acked, in listing order. */
async function applied(name: string): Promise<number[]> {
  const { consumers } = await server.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name }, owner);
  return consumers.map((c) => c.applied[0]?.version ?? 0);
}

function sidecar(s: Setup, extra: string[] = []): CliProcess {
  const p = startCli(["sidecar", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile, "--max-backoff", "1s", ...extra], env());
  running.push(p);
  return p;
}

const rolloutArgs = (name: string, args: string[]): string[] => ["rollout", "status", name, "--token", owner, ...args];
const rollout = (name: string, ...args: string[]) => runCli(rolloutArgs(name, args), env());

/** `rollout status --wait` started, once it printed its first status line. */
async function waitingRollout(name: string, ...args: string[]): Promise<CliProcess> {
  const p = startCli(rolloutArgs(name, ["--wait", ...args]), env());
  running.push(p);
  await waitFor("the first status line", () => p.stdout().includes("live consumer"));
  return p;
}

describe("the sidecar's acks", () => {
  it(
    "when the sidecar swapped the files and its hook succeeded, then it acks and rollout status --wait exits 0 once it applied",
    async () => {
      const s = await setup();
      const p = sidecar(s, ["--exec-on-change", "true"]);
      await waitFor("the first ack", async () => (await applied(s.name)).join() === "1");
      // Paused, it cannot apply the next version: rollout status waits for it.
      p.child.kill("SIGSTOP");
      await update(s.name, "2");
      const waiting = await waitingRollout(s.name, "--timeout", "60s");
      p.child.kill("SIGCONT");
      expect(await waiting.exited).toBe(0);
      const r = { out: waiting.stdout() };
      expect(r.out).toContain(`secret "${s.name}" version 2: 0 of 1 live consumer applied it`);
      expect(r.out).toContain(`secret "${s.name}" version 2: 1 of 1 live consumer applied it: converged`);
      expect(await applied(s.name)).toEqual([2]);
      expect(p.logs().filter((l) => l.msg === "acked")).toHaveLength(2);
    },
    SLOW,
  );

  it(
    "when the change hook fails, then the sidecar does not ack (and logs so), and rollout status times out with exit 1 listing it",
    async () => {
      const s = await setup();
      const p = sidecar(s, ["--exec-on-change", "exit 3"]);
      await waitFor("the first ack", async () => (await applied(s.name)).join() === "1"); // no hook on the first set
      await update(s.name, "2");
      await waitFor("the refusal to ack", () => p.logs().some((l) => l.msg === "not acking: the change hook failed"));
      expect(p.logs().filter((l) => l.msg === "files updated")).toHaveLength(2); // applied on disk, but not confirmed
      expect(await applied(s.name)).toEqual([1]);
      const r = await rollout(s.name, "--wait", "--timeout", "2s");
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/behind: olivia on \S+: applied version 1 since /);
      expect(r.out).toContain("timed out after 2s: 1 consumer behind");
      expect((await rollout(s.name)).code).toBe(1); // without --wait: the status, exit 1 as not converged
      expect((await rollout(s.name, "--version", "1")).code).toBe(0);
    },
    SLOW,
  );
});

describe("rollout status", () => {
  it(
    "when a straggler's watch goes away while waited for, then it is dropped from the count, the output says so and it converges",
    async () => {
      const s = await setup();
      const w = openWatch(server.client, { mesh: MESH, items: [{ name: s.name }] }, owner);
      await w.next(); // never acked
      const waiting = await waitingRollout(s.name, "--timeout", "60s");
      w.cancel();
      expect(await waiting.exited).toBe(0);
      const r = { out: waiting.stdout() };
      expect(r.out).toMatch(/consumer olivia on \S+ left \(its watch ended or its lease lapsed\): no longer counted/);
      expect(r.out).toContain("0 of 0 live consumers applied it: converged");
    },
    SLOW,
  );

  it("when a flag is bad, then it exits 2 naming it", async () => {
    const s = await setup();
    const bad = await rollout(s.name, "--version", "x");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--version");
    const badTimeout = await rollout(s.name, "--wait", "--timeout", "soon");
    expect(badTimeout.code).toBe(2);
    expect(badTimeout.err).toContain("--timeout");
  });
});

describe("run --restart-on-change", () => {
  it(
    "when the restarted command stayed up --ack-after, then run acks the new revision",
    async () => {
      const s = await setup();
      const script = "setInterval(() => {}, 1000)";
      const p = startCli(["run", "--projection", s.projection, "--token-file", s.tokenFile, "--restart-on-change", "--ack-after", "1s", "--", process.execPath, "-e", script], env());
      // It reconnects holding the snapshot's revision (known_revision): that counts as applied.
      await waitFor("the watch", async () => (await applied(s.name)).join() === "1");
      await update(s.name, "2");
      await waitFor("the ack after the restart", async () => (await applied(s.name)).join() === "2", 20_000);
      p.child.kill("SIGTERM"); // forwarded to the command: both end
      expect(await p.exited).toBe(143);
    },
    SLOW,
  );
});
