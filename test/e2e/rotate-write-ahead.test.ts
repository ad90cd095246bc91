/**
 * Write-ahead rotation with a rotator (#30 items 1, 3, 6) through the real server: the
 * rotation is recorded PENDING (new version sealed, not current, readable as stage
 * "pending" only) before the exec rotator's rotate step runs, so a second rotation is
 * refused before its command could run (the race of running the step first); exit 75
 * (EX_TEMPFAIL) leaves it PENDING and the driver retries with backoff until the command
 * accepts, the current version untouched meanwhile. SECRETD_E2E_STORAGE=postgres runs
 * the same file on PostgreSQL.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RotationState, type Rollout, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { eventually } from "../conformance/storage-suite.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "m";

async function errorOf(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to fail");
}

describe("write-ahead rotation (exec rotator)", () => {
  let x: TestServer;
  let tok: string;
  let dir: string;
  const flag = (name: string, on: boolean): void => {
    if (on) writeFileSync(path.join(dir, name), "");
    else rmSync(path.join(dir, name), { force: true });
  };
  const runs = (name: string, version: number): number => {
    const f = path.join(dir, `runs-rotate-${name}-${version}`);
    return existsSync(f) ? readFileSync(f, "utf8").split("\n").filter((l) => l !== "").length : 0;
  };
  const text = (sec: Secret, k: string): string => Buffer.from(sec.data[k] ?? []).toString();
  const get = (name: string, req: object = {}): Promise<Secret> => x.call<Secret>("getSecret", { mesh: MESH, name, ...req }, tok);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "secretd-write-ahead-"));
    // rotate|retire TENANT MESH NAME VERSION: each run counted; "block" holds it (until removed), "tempfail" answers 75.
    const script = path.join(dir, "rotator.sh");
    writeFileSync(
      script,
      `#!/bin/sh\nD=${JSON.stringify(dir)}\necho run >> "$D/runs-$1-$4-$5"\ncat > /dev/null\n` +
        `n=0; while [ -f "$D/block" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n[ -f "$D/tempfail" ] && exit 75\nexit 0\n`,
      { mode: 0o755 },
    );
    x = await startTestServer({ rotatorExec: script, rotatorTimeout: "30s" });
    tok = await x.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  });
  afterAll(async () => {
    await x.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("while the step runs the new version is pending (stage only, not by number, not current) and a second rotation is refused before its command runs", async () => {
    const c = await x.call<Secret>("createSecret", { mesh: MESH, name: "wa", stringData: { user: "app", pw: "one" } }, tok);
    flag("block", true);
    let first: Promise<Rollout> | undefined;
    try {
      first = x.call<Rollout>("rotateSecret", { mesh: MESH, name: "wa", etag: c.etag, stringData: { pw: "two" }, rotator: "exec" }, tok);
      await eventually(async () => runs("wa", 2) === 1);
      const current = await get("wa");
      expect(current.version).toBe(1);
      expect(text(current, "pw")).toBe("one");
      const pending = await get("wa", { stage: "pending" });
      expect(pending.version).toBe(2);
      expect(pending.stage).toBe("pending");
      expect(text(pending, "pw")).toBe("two");
      expect(text(pending, "user")).toBe("app");
      expect((await errorOf(get("wa", { version: 2 }))).code).toBe(status.NOT_FOUND);
      const second = await errorOf(x.call("rotateSecret", { mesh: MESH, name: "wa", etag: c.etag, stringData: { pw: "three" }, rotator: "exec" }, tok));
      expect(second.code).toBe(status.FAILED_PRECONDITION);
      expect(second.details).toContain("already being rotated");
      expect(second.details).toContain("state pending");
    } finally {
      flag("block", false);
    }
    const r = await first;
    expect(r.version).toBe(2);
    // The command ran once: the refused rotation never reached it.
    expect(runs("wa", 2)).toBe(1);
    const now = await get("wa");
    expect(now.version).toBe(2);
    expect(text(now, "pw")).toBe("two");
    expect((await errorOf(get("wa", { stage: "pending" }))).code).toBe(status.NOT_FOUND);
  });

  it("exit 75 (EX_TEMPFAIL) leaves the rotation PENDING, retried with backoff, the current version untouched, until the command accepts", async () => {
    const c = await x.call<Secret>("createSecret", { mesh: MESH, name: "wt", stringData: { pw: "one" } }, tok);
    flag("tempfail", true);
    try {
      const r = await x.call<Rollout>("rotateSecret", { mesh: MESH, name: "wt", etag: c.etag, stringData: { pw: "two" }, rotator: "exec" }, tok);
      expect(r.state).toBe(RotationState.ROTATION_STATE_PENDING);
      expect(r.detail).toContain("retrying");
      expect(r.detail).toContain("status 75");
      // Retried by the driver (1 s, then doubling): the value stays current meanwhile.
      await eventually(async () => runs("wt", 2) >= 2, 10_000);
      const current = await get("wt");
      expect(current.version).toBe(1);
      expect(text(current, "pw")).toBe("one");
    } finally {
      flag("tempfail", false);
    }
    await eventually(async () => (await get("wt")).version === 2, 15_000);
    expect(text(await get("wt"), "pw")).toBe("two");
    await eventually(async () => (await x.call<Rollout>("getRollout", { mesh: MESH, name: "wt" }, tok)).state === RotationState.ROTATION_STATE_DONE, 10_000);
    expect(x.logs.some((l) => l.includes("failed transiently") && l.includes("status 75"))).toBe(true);
  });
});
