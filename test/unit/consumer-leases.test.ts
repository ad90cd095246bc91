import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import type { Storage } from "../../src/storage/storage.js";
import { ConsumerLeases, LEASE_DEFAULTS } from "../../src/watch/consumer-leases.js";
import { secretRow, versionRow } from "../conformance/storage-suite.js";

let dir: string;
let st: SqliteStorage;
let now = 1_000_000;
const p = { sub: "w", tenant: "t1", roles: ["app"], meshes: undefined, exp: undefined };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-leases-"));
  st = new SqliteStorage(path.join(dir, "db.sqlite"));
});
afterEach(async () => {
  await st.close();
  rmSync(dir, { recursive: true, force: true });
});

it("when a replica stops renewing (it died), then its leases lapse within 30 s of its last renewal; while it renews they live", async () => {
  expect(LEASE_DEFAULTS.ttlMs).toBeLessThanOrEqual(30_000);
  expect(LEASE_DEFAULTS.renewMs * 2).toBeLessThan(LEASE_DEFAULTS.ttlMs); // one missed renewal is survived
  const s = secretRow();
  await st.insertSecret(s, versionRow(s));
  const alive = new ConsumerLeases(st, { ...LEASE_DEFAULTS, replica: "alive", now: () => now });
  const dead = new ConsumerLeases(st, { ...LEASE_DEFAULTS, replica: "dead", now: () => now });
  await alive.hold("w1", p, [s.uid], "rev-1", now);
  await dead.hold("w2", p, [s.uid], "rev-1", now);
  const start = now;
  for (let t = 0; t < 4; t++) {
    now += LEASE_DEFAULTS.renewMs;
    await alive.noteSent("w1", `rev-${t + 2}`, [{ uid: s.uid, version: 1, mesh: "m", name: "s" }]);
    await alive.renew();
  }
  const live = await st.listLeases(s.uid, now);
  expect(live.map((l) => l.replica)).toEqual(["alive"]);
  expect(live[0]!.revision).toBe("rev-5");
  expect(await st.listLeases(s.uid, start + 30_000)).not.toContainEqual(expect.objectContaining({ replica: "dead" }));
  await alive.close();
  expect(await st.listLeases(s.uid, now)).toEqual([]);
  await dead.close();
});

it("when a process holds many watches of many sources, then each renewal is one storage call that writes one row", async () => {
  const secrets = Array.from({ length: 256 }, (_, i) => secretRow({ name: `src-${i}` }));
  for (const s of secrets) await st.insertSecret(s, versionRow(s));
  const uids = secrets.map((s) => s.uid);
  const calls: string[] = [];
  const written: number[] = [];
  const counting: Pick<Storage, "openReplica" | "putLeases" | "deleteLeases" | "renewLeases" | "deleteReplicaLeases" | "recordSent" | "recordAck"> = {
    recordAck: (...a) => st.recordAck(...a),
    recordSent: (...a) => (calls.push("recordSent"), st.recordSent(...a)),
    openReplica: (...a) => (calls.push("openReplica"), st.openReplica(...a)),
    putLeases: (...a) => (calls.push("putLeases"), st.putLeases(...a)),
    deleteLeases: (...a) => (calls.push("deleteLeases"), st.deleteLeases(...a)),
    renewLeases: async (...a) => {
      calls.push("renewLeases");
      const n = await st.renewLeases(...a);
      written.push(n);
      return n;
    },
    deleteReplicaLeases: (...a) => (calls.push("deleteReplicaLeases"), st.deleteReplicaLeases(...a)),
  };
  const leases = new ConsumerLeases(counting, { ...LEASE_DEFAULTS, replica: "r", now: () => now });
  for (let w = 0; w < 40; w++) await leases.hold(`w${w}`, p, uids, "rev", now); // 40 x 256 = 10,240 leases
  calls.length = 0;
  for (let round = 0; round < 3; round++) {
    now += LEASE_DEFAULTS.renewMs;
    await leases.renew();
  }
  expect(calls).toEqual(["renewLeases", "renewLeases", "renewLeases"]);
  expect(written).toEqual([1, 1, 1]); // the heartbeat row, not one per lease
  expect(await st.listLeases(uids[200]!, now + LEASE_DEFAULTS.ttlMs - 1)).toHaveLength(40);
  await leases.close();
});

it("when a process's heartbeat lapsed (it stalled past the ttl), then it starts a new one and records every lease it holds again", async () => {
  const s = secretRow();
  const t = secretRow({ name: "t" });
  await st.insertSecret(s, versionRow(s));
  await st.insertSecret(t, versionRow(t));
  const leases = new ConsumerLeases(st, { ...LEASE_DEFAULTS, replica: "r", now: () => now });
  await leases.hold("w1", p, [s.uid, t.uid], "rev-1", now);
  await leases.hold("w2", p, [t.uid], "rev-1", now);
  await leases.noteSent("w1", "rev-2", [{ uid: s.uid, version: 1, mesh: "m", name: "s" }]);
  now += LEASE_DEFAULTS.ttlMs + 1;
  expect(await st.listLeases(s.uid, now)).toEqual([]);
  await leases.renew();
  expect(leases.replica).toBe("r#1");
  expect((await st.listLeases(s.uid, now)).map((l) => [l.watchId, l.replica, l.revision])).toEqual([["w1", "r#1", "rev-2"]]);
  expect((await st.listLeases(t.uid, now)).map((l) => l.watchId).sort()).toEqual(["w1", "w2"]);
  await leases.close();
  expect(await st.listLeases(t.uid, now)).toEqual([]);
});
