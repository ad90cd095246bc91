import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
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
    alive.noteRevision("w1", `rev-${t + 2}`);
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
