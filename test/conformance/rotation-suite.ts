/**
 * Rotations on every back-end (#30): RotateSecret's one transaction (CAS on the etag, one
 * active rotation per secret, stage retire) and the driver's claim / finish / release,
 * including two handles (processes, replicas) racing for one claim. Opaque bytes only.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RotationRow, Storage } from "../../src/storage/storage.js";
import { secretRow, versionRow, type StorageFactory } from "./storage-suite.js";

const scope = { tenant: "t1", mesh: "m1" };

function rotation(uid: string, version: number, over: Partial<RotationRow> = {}): RotationRow {
  return {
    secretUid: uid, tenant: "t1", mesh: "m1", name: "s", rotator: "", version, previousVersion: version - 1, retire: 0, state: 1, started: 1000, deadline: 61_000,
    finished: undefined, previousReadable: true, detail: "", driver: "", driverExpire: 0, ...over,
  };
}

export function runRotationConformance(name: string, factory: StorageFactory): void {
  describe(`rotation conformance: ${name}`, () => {
    let st: Storage;
    beforeEach(async () => {
      st = await factory.open();
    });
    afterEach(async () => {
      await factory.destroy(st);
    });

    async function rotated(over: Partial<RotationRow> = {}) {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const next = { ...s, version: 2, etag: "e2" };
      expect(await st.rotateSecret(next, versionRow(next), s.etag, 10, rotation(s.uid, 2, over))).toBe("ok");
      return { s, next };
    }

    it("rotateSecret writes the version and the record in one; a stale etag is conflict, a gone secret missing, and nothing is recorded", async () => {
      const { s, next } = await rotated();
      expect((await st.readSecret(scope, "s", 0))?.secret.version).toBe(2);
      expect(await st.readRotation(s.uid, 0)).toEqual(rotation(s.uid, 2));
      expect(await st.readRotation(s.uid, 2)).toEqual(rotation(s.uid, 2));
      expect(await st.readRotation(s.uid, 1)).toBeUndefined();
      const third = { ...next, version: 3, etag: "e3" };
      // An active rotation answers first, whatever the etag.
      expect(await st.rotateSecret(third, versionRow(third), "stale", 10, rotation(s.uid, 3))).toEqual({ running: rotation(s.uid, 2) });
      expect(await st.finishRotation(s.uid, 2, "", { state: 3, finished: 2000, detail: "d", retirePrevious: false })).toBe(false);
      expect(await st.claimRotation(s.uid, 2, "p1", 1000, 5000)).toBe(true);
      expect(await st.finishRotation(s.uid, 2, "p1", { state: 3, finished: 2000, detail: "done", retirePrevious: false })).toBe(true);
      expect(await st.rotateSecret(third, versionRow(third), "stale", 10, rotation(s.uid, 3))).toBe("conflict");
      expect(await st.readRotation(s.uid, 0)).toMatchObject({ version: 2, state: 3, finished: 2000, detail: "done", previousReadable: true, driver: "" });
      const gone = secretRow({ name: "gone" });
      expect(await st.rotateSecret(gone, versionRow(gone), gone.etag, 10, rotation(gone.uid, 1))).toBe("missing");
      expect(await st.readRotation(gone.uid, 0)).toBeUndefined();
    });

    it("write-ahead: beginRotation stores the pending version aside (not current, no rollback), promote makes it current, discard destroys it", async () => {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const next = { ...s, version: 2, etag: "e2" };
      const pending = rotation(s.uid, 2, { state: 6, driver: "p1", driverExpire: 9000 });
      expect(await st.beginRotation(versionRow({ ...s, version: 3 }), s.etag, pending)).toBe("conflict");
      expect(await st.beginRotation(versionRow(next), "stale", pending)).toBe("conflict");
      expect(await st.beginRotation(versionRow(next), s.etag, pending)).toBe("ok");
      const read = await st.readSecret(scope, "s", 0);
      expect(read?.secret.version).toBe(1);
      expect(read?.latestVersion).toBe(1);
      expect((await st.readSecret(scope, "s", 2))?.version?.version).toBe(2);
      expect((await st.listActiveRotations(10)).map((r) => r.state)).toEqual([6]);
      // Active: a second rotation is refused naming it; a finish does not apply to PENDING.
      expect(await st.beginRotation(versionRow(next), s.etag, rotation(s.uid, 2, { state: 6 }))).toEqual({ running: pending });
      expect(await st.rotateSecret(next, versionRow(next), s.etag, 10, rotation(s.uid, 2))).toEqual({ running: pending });
      expect(await st.claimRotation(s.uid, 2, "p1", 1000, 9500)).toBe(true);
      expect(await st.finishRotation(s.uid, 2, "p1", { state: 3, finished: 2000, detail: "d", retirePrevious: true })).toBe(false);
      expect(await st.promoteRotation(next, "stale", 10, rotation(s.uid, 2))).toBe("conflict");
      expect(await st.promoteRotation(next, s.etag, 10, rotation(s.uid, 2, { deadline: 70_000 }))).toBe("ok");
      expect((await st.readSecret(scope, "s", 0))?.secret).toMatchObject({ version: 2, etag: "e2" });
      expect(await st.readRotation(s.uid, 2)).toEqual(rotation(s.uid, 2, { deadline: 70_000 }));
      expect(await st.promoteRotation(next, "e2", 10, rotation(s.uid, 2))).toBe("gone");
      expect(await st.discardRotation(s.uid, 2, 3000, "x")).toBe(false);
      expect((await st.readSecret(scope, "s", 1))?.version?.version).toBe(1);

      // Discard: the pending version goes, the record is FAILED, current untouched.
      const t = secretRow({ name: "t" });
      await st.insertSecret(t, versionRow(t));
      expect(await st.beginRotation(versionRow({ ...t, version: 2 }), t.etag, rotation(t.uid, 2, { name: "t", state: 6 }))).toBe("ok");
      // A retried step's note is stored on the PENDING record only.
      expect(await st.noteRotation(t.uid, 2, "retrying: attempt 1")).toBe(true);
      expect(await st.readRotation(t.uid, 2)).toMatchObject({ state: 6, detail: "retrying: attempt 1" });
      expect(await st.discardRotation(t.uid, 2, 3000, "refused")).toBe(true);
      expect(await st.noteRotation(t.uid, 2, "late")).toBe(false);
      expect(await st.readRotation(t.uid, 2)).toMatchObject({ state: 5, finished: 3000, detail: "refused", driver: "" });
      expect((await st.readSecret(scope, "t", 2))?.version).toBeUndefined();
      expect((await st.readSecret(scope, "t", 0))?.secret.version).toBe(1);
      expect(await st.promoteRotation({ ...t, version: 2, etag: "e2" }, t.etag, 10, rotation(t.uid, 2))).toBe("gone");
      expect(await st.listActiveRotations(10)).toHaveLength(1);
      // The discarded attempt's record gives way to the next attempt at that version.
      expect(await st.beginRotation(versionRow({ ...t, version: 2 }), t.etag, rotation(t.uid, 2, { name: "t", state: 6, started: 4000 }))).toBe("ok");
      expect(await st.readRotation(t.uid, 2)).toMatchObject({ state: 6, started: 4000 });
    });

    it("IMMEDIATE destroys the previous version in the same transaction; the next rotation retires a previous that NEVER kept", async () => {
      const { s, next } = await rotated({ state: 3, finished: 1000, previousReadable: true });
      expect((await st.readSecret(scope, "s", 1))?.version?.version).toBe(1);
      const third = { ...next, version: 3, etag: "e3" };
      expect(await st.rotateSecret(third, versionRow(third), "e2", 10, rotation(s.uid, 3, { state: 3, finished: 1000, previousReadable: false }))).toBe("ok");
      // Version 1 (NEVER's previous) and version 2 (IMMEDIATE's) are both gone; 3 is current.
      expect((await st.readSecret(scope, "s", 1))?.version).toBeUndefined();
      expect((await st.readSecret(scope, "s", 2))?.version).toBeUndefined();
      expect((await st.readSecret(scope, "s", 0))?.version?.version).toBe(3);
      expect((await st.readRotation(s.uid, 2))?.previousReadable).toBe(false);
    });

    it("one claim at a time across handles: taken when free or lapsed, renewed by its holder; finish retires once; release frees it at once", async () => {
      const { s } = await rotated();
      const peer = await factory.openPeer(st);
      try {
        const claims = await Promise.all([st.claimRotation(s.uid, 2, "a", 1000, 5000), peer.claimRotation(s.uid, 2, "b", 1000, 5000)]);
        expect(claims.filter(Boolean)).toHaveLength(1);
        const [holder, other] = claims[0] ? (["a", "b"] as const) : (["b", "a"] as const);
        expect(await st.claimRotation(s.uid, 2, other, 4999, 9000)).toBe(false);
        expect(await st.claimRotation(s.uid, 2, holder, 4999, 9000)).toBe(true);
        expect(await peer.claimRotation(s.uid, 2, other, 9000, 14_000)).toBe(true); // lapsed at 9000
        expect(await st.finishRotation(s.uid, 2, holder, { state: 3, finished: 9001, detail: "x", retirePrevious: true })).toBe(false);
        await peer.releaseRotations(other);
        expect(await st.claimRotation(s.uid, 2, holder, 9001, 14_000)).toBe(true);
        expect(await st.listActiveRotations(10)).toHaveLength(1);
        expect(await st.finishRotation(s.uid, 2, holder, { state: 4, finished: 9002, detail: "timed out", retirePrevious: true })).toBe(true);
        expect(await st.finishRotation(s.uid, 2, holder, { state: 4, finished: 9003, detail: "again", retirePrevious: true })).toBe(false);
        expect(await st.listActiveRotations(10)).toEqual([]);
        expect(await st.readRotation(s.uid, 2)).toMatchObject({ state: 4, finished: 9002, detail: "timed out", previousReadable: false });
        expect((await peer.readSecret(scope, "s", 1, true))?.version).toBeUndefined();
        expect((await st.readSecret(scope, "s", 1))?.version).toBeUndefined();
        // A claim on an ended rotation is refused.
        expect(await st.claimRotation(s.uid, 2, holder, 20_000, 30_000)).toBe(false);
      } finally {
        await peer.close();
      }
    });

    it("deleting the secret deletes its rotations", async () => {
      const { s, next } = await rotated();
      expect(await st.deleteSecret(s.uid, next.etag)).toBe("ok");
      expect(await st.readRotation(s.uid, 0)).toBeUndefined();
      expect(await st.listActiveRotations(10)).toEqual([]);
    });
  });
}
