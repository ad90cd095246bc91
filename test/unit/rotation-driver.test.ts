/**
 * The rotation driver's claim (#30 item 4): two processes' drivers over one database
 * (two SqliteStorage connections to one file), and only the claim holder ever probes or
 * finishes a rotation; when the holder dies without letting go, the other takes over once
 * the claim lapses on the clock, and a driver stopping in order lets go at once.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { RotationDriver, timedOutDetail } from "../../src/domain/rotation-driver.js";
import type { RolloutProbe } from "../../src/domain/rollout-probe.js";
import { RotationState } from "../../src/gen/secrets/v1/secrets.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import type { RotationRow, SecretRow, VersionRow } from "../../src/storage/storage.js";
import { eventually } from "../conformance/storage-suite.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "secretd-rotation-driver-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const secret: SecretRow = {
  uid: "uid-1", tenant: "t", mesh: "m", name: "db", type: "Opaque", description: "", owner: "o", labels: {}, annotations: {},
  immutable: false, version: 1, etag: "e1", keys: ["pw"], createTime: 1, updateTime: 1, expireTime: undefined,
};
const version = (n: number): VersionRow => ({ uid: secret.uid, version: n, keys: ["pw"], dek: Buffer.from([1, 1, 65]), payload: Buffer.from(`sealed-${n}`), createTime: n });

async function rotated(file: string, now: number): Promise<SqliteStorage> {
  const st = new SqliteStorage(file);
  await st.insertSecret(secret, version(1));
  const rotation: RotationRow = {
    secretUid: secret.uid, tenant: "t", mesh: "m", name: "db", rotator: "", version: 2, previousVersion: 1, retire: 0, state: RotationState.ROTATION_STATE_WAITING_FOR_ACKS,
    started: now, deadline: now + 60_000, finished: undefined, previousReadable: true, detail: "", driver: "", driverExpire: 0,
  };
  expect(await st.rotateSecret({ ...secret, version: 2, etag: "e2" }, version(2), "e1", 10, rotation)).toBe("ok");
  return st;
}

describe("rotation driver claims", () => {
  it("of two drivers only the claim holder probes; the other takes over once the holder's claim lapses; a finish retires the previous version once", async () => {
    const file = path.join(tmp, "a.db");
    let clock = 1_000_000;
    const now = (): number => clock;
    const a = await rotated(file, clock);
    const b = new SqliteStorage(file);
    const probes: string[] = [];
    let converged = false;
    const probe = (who: string): RolloutProbe => async () => {
      probes.push(who);
      return { version: 0, converged, behind: [], consumers: 0, applied: 0 };
    };
    const finished: string[] = [];
    const opts = { now, intervalMs: 10, claimTtlMs: 1000 };
    const da = new RotationDriver({ ...opts, storage: a, probe: probe("a"), driver: "a", onFinished: () => finished.push("a") });
    const db = new RotationDriver({ ...opts, storage: b, probe: probe("b"), driver: "b", onFinished: () => finished.push("b") });
    da.start();
    await eventually(() => probes.length > 0);
    db.start();
    await eventually(() => probes.length > 20);
    expect(new Set(probes)).toEqual(new Set(["a"]));
    expect((await b.readRotation(secret.uid, 2))?.driver).toBe("a");

    // "a" dies: its timer stops and it never lets go (no stop()). Before the claim lapses "b" waits; after, it drives.
    const dead = da as unknown as { stopped: boolean };
    dead.stopped = true;
    await new Promise((r) => setTimeout(r, 100));
    probes.length = 0;
    await new Promise((r) => setTimeout(r, 100));
    expect(probes).toEqual([]);
    clock += 1001;
    await eventually(() => probes.includes("b"));
    expect(new Set(probes)).toEqual(new Set(["b"]));

    converged = true;
    await eventually(() => finished.length > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(finished).toEqual(["b"]);
    const r = await a.readRotation(secret.uid, 2);
    expect(r).toMatchObject({ state: RotationState.ROTATION_STATE_DONE, previousReadable: false, driver: "" });
    expect((await a.readSecret({ tenant: "t", mesh: "m" }, "db", 1))?.version).toBeUndefined();
    expect((await a.readSecret({ tenant: "t", mesh: "m" }, "db", 2))?.version?.version).toBe(2);
    await db.stop();
    await a.close();
    await b.close();
  });

  it("a driver stopping in order lets go of its claims: another takes over without waiting for the lapse", async () => {
    const file = path.join(tmp, "b.db");
    const clock = 5_000_000;
    const a = await rotated(file, clock);
    const b = new SqliteStorage(file);
    const seen: string[] = [];
    const probe = (who: string): RolloutProbe => async () => {
      seen.push(who);
      return { version: 0, converged: false, behind: [], consumers: 1, applied: 0 };
    };
    const opts = { now: () => clock, intervalMs: 10, claimTtlMs: 60_000 };
    const da = new RotationDriver({ ...opts, storage: a, probe: probe("a"), driver: "a" });
    da.start();
    await eventually(() => seen.includes("a"));
    await da.stop();
    const db = new RotationDriver({ ...opts, storage: b, probe: probe("b"), driver: "b" });
    db.start();
    await eventually(() => seen.includes("b"));
    await db.stop();
    await a.close();
    await b.close();
  });

  it("a TIMED_OUT detail names subs, consumer ids and replicas, at most 20 of them, and nothing else", () => {
    const behind = Array.from({ length: 23 }, (_, i) => ({ sub: `s${i}`, watchId: `w${i}`, replica: "r1" }));
    const d = timedOutDetail(4, 600_000, behind);
    expect(d).toContain('23 consumer(s) never confirmed version 4: sub "s0" (consumer w0 on r1)');
    expect(d).toContain("and 3 more");
    expect(d).not.toContain("s20");
  });
});
