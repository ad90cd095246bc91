/**
 * Scheduled rotation's storage on every back-end (#30 item 5): due secrets found by the
 * index on their rotation-next annotation (kept with every write of the row), one claim
 * per due time across two handles (processes, replicas), failures with a retry time, and
 * the schedule row gone with its secret.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Storage } from "../../src/storage/storage.js";
import { secretRow, versionRow, type StorageFactory } from "./storage-suite.js";

const NEXT = "secretd.io/rotation-next";
const T1 = "2026-01-01T00:00:00.000Z";
const T2 = "2026-01-01T01:00:00.000Z";
const AFTER_T1 = Date.parse(T1) + 1;

export function runScheduleConformance(name: string, factory: StorageFactory): void {
  describe(`rotation schedule conformance: ${name}`, () => {
    let st: Storage;
    let other: Storage;
    beforeEach(async () => {
      st = await factory.open();
      other = await factory.openPeer(st);
    });
    afterEach(async () => {
      await other.close();
      await factory.destroy(st);
    });

    it("listDueRotations finds secrets whose rotation-next passed, earliest first, with the etag read; an update moving it moves them out", async () => {
      const a = secretRow({ name: "a", annotations: { [NEXT]: T2, p: "1" } });
      const b = secretRow({ name: "b", annotations: { [NEXT]: T1 } });
      const c = secretRow({ name: "c", annotations: {} });
      for (const s of [a, b, c]) await st.insertSecret(s, versionRow(s));
      expect(await st.listDueRotations(T1, AFTER_T1, 10)).toEqual([{ uid: b.uid, tenant: "t1", mesh: "m1", name: "b", etag: b.etag, annotations: { [NEXT]: T1 }, due: T1 }]);
      expect((await st.listDueRotations(T2, AFTER_T1, 10)).map((d) => d.name)).toEqual(["b", "a"]);
      expect((await st.listDueRotations(T2, AFTER_T1, 1)).map((d) => d.name)).toEqual(["b"]);
      const moved = { ...b, version: 2, etag: "e2", annotations: { [NEXT]: "2026-01-02T00:00:00.000Z" } };
      expect(await st.updateSecret(moved, versionRow(moved), b.etag, 10)).toBe("ok");
      expect((await st.listDueRotations(T2, AFTER_T1, 10)).map((d) => d.name)).toEqual(["a"]);
    });

    it("one claim per due time across two handles; a lapsed claim is taken over; a failure waits for its retry time; a new due time starts over", async () => {
      const s = secretRow({ annotations: { [NEXT]: T1 } });
      await st.insertSecret(s, versionRow(s));
      const now = AFTER_T1;
      expect(await st.claimDueRotation(s.uid, T1, "p1", now, now + 1000)).toBe(true);
      expect(await other.claimDueRotation(s.uid, T1, "p2", now, now + 1000)).toBe(false);
      expect(await st.listDueRotations(T1, now, 10)).toEqual([]);
      expect(await other.listDueRotations(T1, now + 1000, 10)).toHaveLength(1);
      expect(await other.claimDueRotation(s.uid, T1, "p2", now + 1000, now + 2000)).toBe(true);
      await other.failDueRotation(s.uid, "p2", { error: "FAILED_PRECONDITION: refused", failedAt: now + 1500, retryAt: now + 60_000 });
      expect(await st.readDueRotation(s.uid)).toEqual({ secretUid: s.uid, due: T1, claimedBy: "p2", claimExpire: 0, failures: 1, lastError: "FAILED_PRECONDITION: refused", failedAt: now + 1500, retryAt: now + 60_000 });
      expect(await st.listDueRotations(T1, now + 2000, 10)).toEqual([]);
      expect(await st.claimDueRotation(s.uid, T1, "p1", now + 2000, now + 3000)).toBe(false);
      expect(await st.claimDueRotation(s.uid, T1, "p1", now + 60_000, now + 61_000)).toBe(true);
      expect((await st.readDueRotation(s.uid))?.failures).toBe(1);
      await st.releaseDueRotation(s.uid, "p1");
      expect(await other.claimDueRotation(s.uid, T1, "p2", now + 60_001, now + 61_000)).toBe(true);
      // A new due time (the secret was rotated): claimable at once, its failures counted afresh.
      expect(await st.claimDueRotation(s.uid, T2, "p1", now + 60_002, now + 61_000)).toBe(true);
      expect(await st.readDueRotation(s.uid)).toMatchObject({ due: T2, claimedBy: "p1", failures: 0 });
      expect(await st.deleteSecret(s.uid, undefined)).toBe("ok");
      expect(await st.readDueRotation(s.uid)).toBeUndefined();
    });
  });
}
