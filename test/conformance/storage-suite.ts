/**
 * The storage conformance suite: every back-end must pass it unchanged (the idea of
 * Vault's physical/testing.go). It works on opaque bytes only, as back-ends do.
 */
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change, FeedEvent } from "../../src/storage/change-feed.js";
import { auditKeysJson, auditRowBytes } from "../../src/storage/audit-row-bytes.js";
import type { AuditRow, GrantRow, MacRows, SecretRow, Storage, VersionRow, WatchLease } from "../../src/storage/storage.js";

export interface OpenOptions {
  /** Change rows the back-end keeps for resuming subscribers (its compaction window). */
  readonly feedRetain?: number;
}

export interface StorageFactory {
  /** A fresh, empty back-end. */
  open(options?: OpenOptions): Promise<Storage>;
  /** A second handle on the same data, as another process or replica holds it. */
  openPeer(s: Storage): Promise<Storage>;
  /** Closes and removes what open() made (peers are closed by the test). */
  destroy(s: Storage): Promise<void>;
}

/** Collects what a feed subscriber receives. */
export function recorder(): { events: FeedEvent[]; changes: () => Change[]; listener: (e: FeedEvent) => void } {
  const events: FeedEvent[] = [];
  return {
    events,
    changes: () => events.flatMap((e) => (e.type === "changes" ? e.changes : [])),
    listener: (e) => events.push(e),
  };
}

/** Waits for a condition that another process's commit makes true (no timing is asserted). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function lease(over: Partial<WatchLease> = {}): WatchLease {
  return { watchId: randomUUID(), tenant: "t1", sub: "watcher", roles: ["app"], revision: "", since: 1000, replica: "r1", ...over };
}

/** As ListConsumers lists a lease: the watch, one of its secrets, its replica's heartbeat. */
function listed(l: WatchLease, secretUid: string, lastSeen: number, expireTime: number) {
  return { ...l, secretUid, lastSeen, expireTime, appliedRevision: "", appliedTime: 0, applied: [] };
}

let clock = 1_700_000_000_000;

export function secretRow(over: Partial<SecretRow> = {}): SecretRow {
  clock += 1;
  return {
    uid: randomUUID(),
    tenant: "t1",
    mesh: "m1",
    name: "s",
    type: "Opaque",
    description: "",
    owner: "owner",
    labels: {},
    annotations: {},
    immutable: false,
    version: 1,
    etag: randomUUID(),
    keys: ["k"],
    createTime: clock,
    updateTime: clock,
    expireTime: undefined,
    ...over,
  };
}

export function versionRow(s: SecretRow, version = s.version, bytes = `payload-${version}`): VersionRow {
  return { uid: s.uid, version, keys: s.keys, dek: Buffer.from(`dek-${version}`), payload: Buffer.from(bytes), createTime: s.updateTime };
}

export function auditRow(over: Partial<AuditRow> = {}): AuditRow {
  return {
    tenant: "t1",
    time: 1_000,
    requestId: randomUUID(),
    method: "GetSecret",
    sub: "alice",
    mesh: "m1",
    name: "s",
    version: 1,
    keys: ["k"],
    code: "OK",
    peer: "127.0.0.1:1234",
    stage: "",
    ...over,
  };
}

export function runStorageConformance(name: string, factory: StorageFactory): void {
  describe(`storage conformance: ${name}`, () => {
    let st: Storage;
    beforeEach(async () => {
      st = await factory.open();
    });
    afterEach(async () => {
      await factory.destroy(st);
    });

    it("when a secret is inserted, then it reads back with its current version, byte for byte", async () => {
      const s = secretRow({ labels: { a: "b" }, annotations: { x: "y" }, expireTime: clock + 5000, description: "d", immutable: true });
      expect(await st.insertSecret(s, versionRow(s))).toBe("ok");
      const got = await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0);
      expect(got?.secret).toEqual(s);
      expect(Buffer.from(got!.version!.payload).toString()).toBe("payload-1");
      expect(Buffer.from(got!.version!.dek).toString()).toBe("dek-1");
      expect(got?.grants).toEqual([]);
    });

    it("when the name exists in the same scope, then insert says exists; other scopes and tenants are independent", async () => {
      const a = secretRow();
      await st.insertSecret(a, versionRow(a));
      const dup = secretRow();
      expect(await st.insertSecret(dup, versionRow(dup))).toBe("exists");
      for (const over of [{ mesh: "m2" }, { mesh: "" }, { tenant: "t2" }]) {
        const other = secretRow(over);
        expect(await st.insertSecret(other, versionRow(other))).toBe("ok");
      }
      expect((await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))?.secret.uid).toBe(a.uid);
      expect(await st.readSecret({ tenant: "t3", mesh: "m1" }, "s", 0)).toBeUndefined();
      expect(await st.readSecret({ tenant: "t1", mesh: "m1" }, "nope", 0)).toBeUndefined();
    });

    it("when listing, then names come in order after the cursor, limited, filtered by type and scoped to tenant and mesh", async () => {
      for (const n of ["c", "a", "e", "b", "d"]) {
        const s = secretRow({ name: n, type: n === "b" ? "kubernetes.io/tls" : "Opaque" });
        await st.insertSecret(s, versionRow(s));
      }
      const other = secretRow({ name: "a", tenant: "t2" });
      await st.insertSecret(other, versionRow(other));
      const scope = { tenant: "t1", mesh: "m1" };
      expect((await st.listSecrets(scope, { afterName: "", limit: 10 })).map((s) => s.name)).toEqual(["a", "b", "c", "d", "e"]);
      expect((await st.listSecrets(scope, { afterName: "b", limit: 2 })).map((s) => s.name)).toEqual(["c", "d"]);
      expect((await st.listSecrets(scope, { afterName: "", limit: 10, type: "kubernetes.io/tls" })).map((s) => s.name)).toEqual(["b"]);
      expect(await st.listSecrets({ tenant: "t1", mesh: "m2" }, { afterName: "", limit: 10 })).toEqual([]);
    });

    it("when listing with visibility, then only owned secrets and those with a live grant to one of the subjects appear", async () => {
      const mine = secretRow({ name: "mine", owner: "me" });
      const granted = secretRow({ name: "granted", owner: "x" });
      const byRole = secretRow({ name: "by-role", owner: "x" });
      const expired = secretRow({ name: "expired", owner: "x" });
      const hidden = secretRow({ name: "hidden", owner: "x" });
      for (const s of [mine, granted, byRole, expired, hidden]) await st.insertSecret(s, versionRow(s));
      const g = (s: SecretRow, subject: string, expireTime?: number): GrantRow => ({
        secretUid: s.uid, subject, level: 1, keys: [], expireTime, grantedBy: "x", createTime: clock,
      });
      await st.putGrant(g(granted, "user:me"));
      await st.putGrant(g(byRole, "role:ops"));
      await st.putGrant(g(expired, "user:me", 1000));
      await st.putGrant(g(hidden, "user:someone-else"));
      const rows = await st.listSecrets({ tenant: "t1", mesh: "m1" }, { afterName: "", limit: 10, visibleTo: { owner: "me", subjects: ["user:me", "role:ops"], now: 2000 } });
      expect(rows.map((r) => r.name)).toEqual(["by-role", "granted", "mine"]);
    });

    it("when several secrets are read together, then each comes with its current version, and missing ones are undefined", async () => {
      const a = secretRow({ name: "a" });
      const b = secretRow({ name: "b" });
      await st.insertSecret(a, versionRow(a));
      await st.insertSecret(b, versionRow(b));
      const got = await st.readSecrets({ tenant: "t1", mesh: "m1" }, ["b", "zz", "a"]);
      expect(got.map((x) => x?.secret.name)).toEqual(["b", undefined, "a"]);
      expect(got[0]?.version?.version).toBe(1);
    });

    it("when updated with the current etag, then a new version is current; a stale etag conflicts; old versions beyond the limit are destroyed", async () => {
      let s = secretRow();
      await st.insertSecret(s, versionRow(s));
      for (let v = 2; v <= 5; v++) {
        const next = { ...s, version: v, etag: randomUUID(), description: `v${v}` };
        expect(await st.updateSecret(next, versionRow(next), s.etag, 3)).toBe("ok");
        s = next;
      }
      const scope = { tenant: "t1", mesh: "m1" };
      expect((await st.readSecret(scope, "s", 0))?.secret).toMatchObject({ version: 5, description: "v5", etag: s.etag });
      expect(Buffer.from((await st.readSecret(scope, "s", 0))!.version!.payload).toString()).toBe("payload-5");
      for (const v of [3, 4, 5]) expect((await st.readSecret(scope, "s", v))?.version?.version).toBe(v);
      for (const v of [1, 2]) expect((await st.readSecret(scope, "s", v))?.version).toBeUndefined();
      const stale = { ...s, version: 6, etag: randomUUID() };
      expect(await st.updateSecret(stale, versionRow(stale), "not-the-etag", 3)).toBe("conflict");
      const ghost = secretRow({ name: "ghost" });
      expect(await st.updateSecret(ghost, versionRow(ghost), ghost.etag, 3)).toBe("missing");
    });

    it("when deleted, then the secret, its versions and its grants are gone; a stale etag conflicts; a missing uid is missing", async () => {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      await st.putGrant({ secretUid: s.uid, subject: "user:u", level: 2, keys: ["k"], expireTime: undefined, grantedBy: "owner", createTime: clock });
      expect(await st.deleteSecret(s.uid, "stale")).toBe("conflict");
      expect(await st.deleteSecret(s.uid, s.etag)).toBe("ok");
      expect(await st.deleteSecret(s.uid, undefined)).toBe("missing");
      expect(await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 1)).toBeUndefined();
      const again = secretRow();
      await st.insertSecret(again, versionRow(again));
      expect((await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))?.grants).toEqual([]);
      expect(await st.putGrant({ secretUid: s.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: clock })).toBe("missing");
    });

    it("when a grant is put twice, then it is replaced; deleting by subject and level removes exactly those", async () => {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const base = { secretUid: s.uid, keys: [] as string[], expireTime: undefined, grantedBy: "owner", createTime: clock };
      await st.putGrant({ ...base, subject: "user:u", level: 2 });
      await st.putGrant({ ...base, subject: "user:u", level: 2, keys: ["a", "b"], expireTime: clock + 10 });
      await st.putGrant({ ...base, subject: "user:u", level: 1 });
      await st.putGrant({ ...base, subject: "role:r", level: 4 });
      const grants = (await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))!.grants;
      expect(grants).toHaveLength(3);
      expect(grants.find((g) => g.subject === "user:u" && g.level === 2)).toMatchObject({ keys: ["a", "b"], expireTime: clock + 10 });
      expect(await st.deleteGrants(s.uid, "user:u", 2)).toBe(1);
      expect(await st.deleteGrants(s.uid, "user:u", undefined)).toBe(1);
      expect(await st.deleteGrants(s.uid, "user:u", undefined)).toBe(0);
      expect((await st.readSecret({ tenant: "t1", mesh: "m1" }, "s", 0))!.grants.map((g) => g.subject)).toEqual(["role:r"]);
    });

    it("when a secret was read (so a back-end may have cached it) and then written in any way, then the next read sees the write", async () => {
      const scope = { tenant: "t1", mesh: "m1" };
      const read = async (version = 0) => st.readSecret(scope, "s", version);
      const readBoth = async () => (await st.readSecrets(scope, ["s"]))[0];
      let s = secretRow();
      await st.insertSecret(s, versionRow(s));
      for (const v of [0, 1]) await read(v);
      await readBoth();

      const next = { ...s, version: 2, etag: randomUUID(), description: "changed" };
      expect(await st.updateSecret(next, versionRow(next), s.etag, 1)).toBe("ok");
      s = next;
      expect((await read())!.secret.description).toBe("changed");
      expect((await readBoth())!.version!.version).toBe(2);
      expect((await read(1))!.version).toBeUndefined(); // destroyed beyond max versions

      await st.putGrant({ secretUid: s.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: clock });
      expect((await read())!.grants.map((g) => g.subject)).toEqual(["user:u"]);
      expect((await readBoth())!.grants).toHaveLength(1);
      await st.deleteGrants(s.uid, "user:u", undefined);
      expect((await read())!.grants).toEqual([]);

      expect(await st.replaceDeks([{ uid: s.uid, version: 2, oldDek: Buffer.from("dek-2"), newDek: Buffer.from("new-2") }])).toBe(1);
      expect(Buffer.from((await read(2))!.version!.dek).toString()).toBe("new-2");
      expect(Buffer.from((await read())!.version!.dek).toString()).toBe("new-2");

      expect(await st.deleteSecret(s.uid, undefined)).toBe("ok");
      expect(await read()).toBeUndefined();
      expect(await readBoth()).toBeUndefined();
      const again = secretRow();
      await st.insertSecret(again, versionRow(again, 1, "second life"));
      expect((await read())!.secret.uid).toBe(again.uid);
      expect(Buffer.from((await read())!.version!.payload).toString()).toBe("second life");
    });

    it("when a create request id is recorded, then it is found for its tenant and caller only, refused twice, and gone with its secret", async () => {
      const s = secretRow();
      const req = { sub: "owner", requestId: "r1", secretUid: s.uid, fingerprint: "k1:abc" };
      expect(await st.insertSecret(s, versionRow(s), req)).toBe("ok");
      expect(await st.findCreateRequest("t1", "owner", "r1")).toEqual(req);
      expect(await st.findCreateRequest("t2", "owner", "r1")).toBeUndefined();
      expect(await st.findCreateRequest("t1", "someone-else", "r1")).toBeUndefined();
      const other = secretRow({ name: "other" });
      expect(await st.insertSecret(other, versionRow(other), { ...req, secretUid: other.uid })).toBe("request-exists");
      expect(await st.readSecret({ tenant: "t1", mesh: "m1" }, "other", 0)).toBeUndefined();
      await st.deleteSecret(s.uid, undefined);
      expect(await st.findCreateRequest("t1", "owner", "r1")).toBeUndefined();
    });

    it("when two callers of one tenant use the same request id, then each gets their own record (#16 item 11)", async () => {
      const a = secretRow({ mesh: "prod", owner: "alice" });
      const b = secretRow({ mesh: "dev", owner: "bob" });
      const reqA = { sub: "alice", requestId: "ci-build-7", secretUid: a.uid, fingerprint: "k1:aaa" };
      const reqB = { sub: "bob", requestId: "ci-build-7", secretUid: b.uid, fingerprint: "k1:bbb" };
      expect(await st.insertSecret(b, versionRow(b), reqB)).toBe("ok");
      expect(await st.insertSecret(a, versionRow(a), reqA)).toBe("ok");
      expect(await st.findCreateRequest("t1", "alice", "ci-build-7")).toEqual(reqA);
      expect(await st.findCreateRequest("t1", "bob", "ci-build-7")).toEqual(reqB);
      const again = secretRow({ mesh: "prod", owner: "alice", name: "again" });
      expect(await st.insertSecret(again, versionRow(again), { ...reqA, secretUid: again.uid })).toBe("request-exists");
    });

    it("when listing with expireBefore, then only secrets with an expire_time at or before it appear", async () => {
      for (const [name, expireTime] of [["a", 100], ["b", 200], ["c", undefined]] as const) {
        const s = secretRow({ name, expireTime });
        await st.insertSecret(s, versionRow(s));
      }
      const rows = await st.listSecrets({ tenant: "t1", mesh: "m1" }, { afterName: "", limit: 10, expireBefore: 150 });
      expect(rows.map((r) => r.name)).toEqual(["a"]);
    });

    it("when many writers race on one etag, then exactly one update wins", async () => {
      const s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const results = await Promise.all(
        [...Array(8).keys()].map((i) => {
          const next = { ...s, version: 2, etag: `e${i}` };
          return st.updateSecret(next, versionRow(next), s.etag, 10);
        }),
      );
      expect(results.filter((r) => r === "ok")).toHaveLength(1);
      expect(results.filter((r) => r === "conflict")).toHaveLength(7);
    });

    it("when version keys are listed in pages, then every version comes once, in (uid, version) order, with its scope, name and dek", async () => {
      const made: { uid: string; version: number; tenant: string; name: string }[] = [];
      for (const [i, tenant] of ["t1", "t2", "t1"].entries()) {
        let s = secretRow({ tenant, name: `s${i}` });
        await st.insertSecret(s, versionRow(s));
        made.push({ uid: s.uid, version: 1, tenant, name: s.name });
        for (let v = 2; v <= 3; v++) {
          const next = { ...s, version: v, etag: randomUUID() };
          await st.updateSecret(next, versionRow(next), s.etag, 10);
          made.push({ uid: s.uid, version: v, tenant, name: s.name });
          s = next;
        }
      }
      const seen: { uid: string; version: number; tenant: string; name: string; mesh: string; dek: string }[] = [];
      let after = { uid: "", version: 0 };
      for (let page = 0; page < 20; page++) {
        const rows = await st.listVersionKeys(after.uid, after.version, 2);
        expect(rows.length).toBeLessThanOrEqual(2);
        for (const r of rows) seen.push({ uid: r.uid, version: r.version, tenant: r.tenant, name: r.name, mesh: r.mesh, dek: Buffer.from(r.dek).toString() });
        const last = rows.at(-1);
        if (!last) break;
        after = { uid: last.uid, version: last.version };
      }
      const order = (a: { uid: string; version: number }, b: { uid: string; version: number }): number =>
        a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : a.version - b.version;
      expect(seen).toEqual([...made].sort(order).map((m) => ({ ...m, mesh: "m1", dek: `dek-${m.version}` })));
    });

    it("when versions are wrapped by several KEKs, then kekIdsInUse names each id once (and nothing for an empty store)", async () => {
      expect(await st.kekIdsInUse()).toEqual([]);
      const wrapped = (id: string, fill: number): Buffer => Buffer.concat([Buffer.from([1, id.length]), Buffer.from(id), Buffer.alloc(60, fill)]);
      let s = secretRow({ name: "a" });
      await st.insertSecret(s, { ...versionRow(s), dek: wrapped("k-old", 0x80) });
      const next = { ...s, version: 2, etag: randomUUID() };
      await st.updateSecret(next, { ...versionRow(next), dek: wrapped("k-new_2", 0xff) }, s.etag, 10);
      s = secretRow({ name: "b", tenant: "t2" });
      await st.insertSecret(s, { ...versionRow(s), dek: wrapped("k-old", 0x00) });
      expect((await st.kekIdsInUse()).sort()).toEqual(["k-new_2", "k-old"]);
    });

    it("when deks are replaced, then only rows still holding the old bytes change, and missing rows are skipped", async () => {
      let s = secretRow();
      await st.insertSecret(s, versionRow(s));
      const next = { ...s, version: 2, etag: randomUUID() };
      await st.updateSecret(next, versionRow(next), s.etag, 10);
      s = next;
      const applied = await st.replaceDeks([
        { uid: s.uid, version: 1, oldDek: Buffer.from("dek-1"), newDek: Buffer.from("new-1") },
        { uid: s.uid, version: 2, oldDek: Buffer.from("not-what-is-stored"), newDek: Buffer.from("new-2") },
        { uid: s.uid, version: 9, oldDek: Buffer.from("dek-9"), newDek: Buffer.from("new-9") },
        { uid: randomUUID(), version: 1, oldDek: Buffer.from("dek-1"), newDek: Buffer.from("new-x") },
      ]);
      expect(applied).toBe(1);
      const scope = { tenant: "t1", mesh: "m1" };
      const v1 = (await st.readSecret(scope, "s", 1))!.version!;
      expect(Buffer.from(v1.dek).toString()).toBe("new-1");
      expect(Buffer.from(v1.payload).toString()).toBe("payload-1");
      expect(Buffer.from((await st.readSecret(scope, "s", 2))!.version!.dek).toString()).toBe("dek-2");
      expect(await st.replaceDeks([])).toBe(0);
    });

    it("when rows carry MAC bytes, then they read back unchanged, and an update leaves the grants MAC alone", async () => {
      const mac = (t: string): Buffer => Buffer.from(`mac-${t}`);
      const s = secretRow({ mac: mac("s1"), grantsMac: mac("g0") });
      await st.insertSecret(s, { ...versionRow(s), mac: mac("v1") }, { sub: "owner", requestId: "r", secretUid: s.uid, fingerprint: "f", mac: mac("r") });
      const scope = { tenant: "t1", mesh: "m1" };
      let got = (await st.readSecret(scope, "s", 0))!;
      expect(Buffer.from(got.secret.mac!).toString()).toBe("mac-s1");
      expect(Buffer.from(got.secret.grantsMac!).toString()).toBe("mac-g0");
      expect(Buffer.from(got.version!.mac!).toString()).toBe("mac-v1");
      expect(got.latestVersion).toBe(1);
      expect(Buffer.from((await st.findCreateRequest("t1", "owner", "r"))!.mac!).toString()).toBe("mac-r");
      const next = { ...s, version: 2, etag: randomUUID(), mac: mac("s2"), grantsMac: mac("ignored") };
      expect(await st.updateSecret(next, { ...versionRow(next), mac: mac("v2") }, s.etag, 10)).toBe("ok");
      got = (await st.readSecret(scope, "s", 0))!;
      expect(Buffer.from(got.secret.mac!).toString()).toBe("mac-s2");
      expect(Buffer.from(got.secret.grantsMac!).toString()).toBe("mac-g0");
      expect(got.latestVersion).toBe(2);
      // The pointer set back by hand: latestVersion still names the newest stored version.
      expect((await st.readSecret(scope, "s", 1))!.latestVersion).toBe(2);
      expect((await st.listSecrets(scope, { afterName: "", limit: 10 }))[0]!.latestVersion).toBe(2);
    });

    it("when a grant write carries a guard, then it applies only while the grants MAC is the expected one, and sets the next", async () => {
      const s = secretRow({ grantsMac: Buffer.from("g0") });
      await st.insertSecret(s, versionRow(s));
      const g: GrantRow = { secretUid: s.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: clock };
      expect(await st.putGrant(g, { expect: Buffer.from("stale"), next: Buffer.from("g1") })).toBe("conflict");
      expect((await st.readGrants(s.uid))!.grants).toEqual([]);
      expect(await st.putGrant(g, { expect: Buffer.from("g0"), next: Buffer.from("g1") })).toBe("ok");
      let set = (await st.readGrants(s.uid))!;
      expect(set.grants.map((x) => x.subject)).toEqual(["user:u"]);
      expect(Buffer.from(set.grantsMac!).toString()).toBe("g1");
      expect(await st.deleteGrants(s.uid, "user:u", undefined, { expect: Buffer.from("g0"), next: Buffer.from("g2") })).toBe("conflict");
      expect(await st.deleteGrants(s.uid, "user:u", undefined, { expect: Buffer.from("g1"), next: Buffer.from("g2") })).toBe(1);
      set = (await st.readGrants(s.uid))!;
      expect(set.grants).toEqual([]);
      expect(Buffer.from(set.grantsMac!).toString()).toBe("g2");
      expect(await st.readGrants(randomUUID())).toBeUndefined();
    });

    it("when MACs are listed and replaced, then every row comes with its MACs, and only rows still holding the old bytes change", async () => {
      const a = secretRow({ name: "a", mac: Buffer.from("sa") });
      const b = secretRow({ name: "b" });
      await st.insertSecret(a, { ...versionRow(a), mac: Buffer.from("va") }, { sub: "owner", requestId: "ra", secretUid: a.uid, fingerprint: "f" });
      await st.insertSecret(b, versionRow(b));
      await st.putGrant({ secretUid: b.uid, subject: "role:r", level: 1, keys: ["k"], expireTime: 5, grantedBy: "o", createTime: 1 });
      const all = [...(await st.listMacRows("", 1)), ...(await st.listMacRows([a.uid, b.uid].sort()[0]!, 10))];
      expect(all.map((r) => r.secret.uid)).toEqual([a.uid, b.uid].sort());
      const ra = all.find((r) => r.secret.uid === a.uid)!;
      const rb = all.find((r) => r.secret.uid === b.uid)!;
      expect(ra.versions.map((v) => [v.version, Buffer.from(v.mac!).toString()])).toEqual([[1, "va"]]);
      expect(ra.requests.map((q) => [q.tenant, q.sub, q.requestId, q.mac])).toEqual([["t1", "owner", "ra", undefined]]);
      expect(rb.grants.map((g) => g.subject)).toEqual(["role:r"]);
      const applied = await st.replaceMacs([
        { kind: "secret", uid: a.uid, old: Buffer.from("sa"), next: Buffer.from("sa2") },
        { kind: "secret", uid: b.uid, old: Buffer.from("wrong"), next: Buffer.from("sb2") },
        { kind: "grants", uid: b.uid, old: undefined, next: Buffer.from("gb") },
        { kind: "version", uid: a.uid, version: 1, old: Buffer.from("va"), next: Buffer.from("va2") },
        { kind: "request", tenant: "t1", sub: "owner", requestId: "ra", old: undefined, next: Buffer.from("qa") },
      ]);
      expect(applied).toBe(4);
      const again = await st.listMacRows("", 10);
      const a2 = again.find((r) => r.secret.uid === a.uid)!;
      const b2 = again.find((r) => r.secret.uid === b.uid)!;
      expect(Buffer.from(a2.secret.mac!).toString()).toBe("sa2");
      expect(b2.secret.mac).toBeUndefined();
      expect(Buffer.from(b2.secret.grantsMac!).toString()).toBe("gb");
      expect(Buffer.from(a2.versions[0]!.mac!).toString()).toBe("va2");
      expect(Buffer.from(a2.requests[0]!.mac!).toString()).toBe("qa");
    });

    it("when a store made before row MACs is backfilled, then compute sees every row once, its MACs are stored, the feed hears of it, and a second backfill finds nothing to do", async () => {
      const a = secretRow({ name: "a" });
      await st.insertSecret(a, versionRow(a), { sub: "owner", requestId: "ra", secretUid: a.uid, fingerprint: "f" });
      await st.putGrant({ secretUid: a.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: 1 });
      const heard: string[] = [];
      const sub = st.changes.subscribe((ev) => {
        if (ev.type === "changes") for (const c of ev.changes) heard.push(`${c.kind}:${c.uid}`);
      });
      let seen: readonly MacRows[] = [];
      const applied = await st.backfillMacs((rows) => {
        seen = rows;
        return [
          { kind: "secret", uid: a.uid, old: undefined, next: Buffer.from("sa") },
          { kind: "grants", uid: a.uid, old: undefined, next: Buffer.from("ga") },
          { kind: "version", uid: a.uid, version: 1, old: undefined, next: Buffer.from("va") },
          { kind: "request", tenant: "t1", sub: "owner", requestId: "ra", old: undefined, next: Buffer.from("qa") },
        ];
      });
      sub.close();
      expect(applied).toBe(4);
      expect(seen.map((r) => [r.secret.uid, r.grants.length, r.versions.length, r.requests.length])).toEqual([[a.uid, 1, 1, 1]]);
      expect(heard).toEqual([`secret-rekeyed:${a.uid}`]);
      const got = (await st.readSecret({ tenant: "t1", mesh: "m1" }, "a", 0))!;
      expect([got.secret.mac, got.secret.grantsMac, got.version!.mac].map((m) => Buffer.from(m!).toString())).toEqual(["sa", "ga", "va"]);
      expect(Buffer.from((await st.findCreateRequest("t1", "owner", "ra"))!.mac!).toString()).toBe("qa");
      expect(await st.backfillMacs(() => { throw new Error("must not be called"); })).toBe("none");
    });

    it("when audit events are appended, then each tenant lists only its own, in (time, append) order, with every field", async () => {
      const a = auditRow({ time: 2_000, keys: ["b", "a"], version: 7, code: "PERMISSION_DENIED" });
      const b = auditRow({ time: 1_000 });
      const c = auditRow({ time: 2_000, name: "other" });
      const foreign = auditRow({ tenant: "t2", time: 1_500 });
      await st.appendAudit([a, b]);
      await st.appendAudit([c, foreign]);
      await st.appendAudit([]);
      const got = await st.listAudit("t1", { after: undefined, limit: 10 });
      expect(got.map(({ id: _id, ...rest }) => rest)).toEqual([b, a, c]);
      expect(got[1]!.id).toBeLessThan(got[2]!.id); // equal times: append order
      expect((await st.listAudit("t2", { after: undefined, limit: 10 })).map((e) => e.requestId)).toEqual([foreign.requestId]);
      expect(await st.listAudit("t3", { after: undefined, limit: 10 })).toEqual([]);
    });

    it("when audit events are listed with filters and a keyset position, then pages cover every match exactly once", async () => {
      const rows: AuditRow[] = [];
      for (let i = 0; i < 12; i++) {
        rows.push(auditRow({ time: 1_000 + Math.floor(i / 3) * 10, name: i % 2 === 0 ? "even" : "odd", sub: i % 3 === 0 ? "bob" : "alice", mesh: i % 4 === 0 ? "" : "m1" }));
      }
      await st.appendAudit(rows);
      const all = async (q: Omit<Parameters<Storage["listAudit"]>[1], "after" | "limit">, limit: number): Promise<string[]> => {
        const out: string[] = [];
        let after: { time: number; id: number } | undefined;
        for (let page = 0; page < 50; page++) {
          const got = await st.listAudit("t1", { ...q, after, limit });
          expect(got.length).toBeLessThanOrEqual(limit);
          out.push(...got.map((e) => e.requestId));
          const last = got.at(-1);
          if (!last) break;
          after = { time: last.time, id: last.id };
        }
        return out;
      };
      const ids = (pred: (r: AuditRow) => boolean): string[] => rows.filter(pred).map((r) => r.requestId);
      expect(await all({}, 5)).toEqual(ids(() => true));
      expect(await all({ name: "even" }, 2)).toEqual(ids((r) => r.name === "even"));
      expect(await all({ sub: "bob" }, 1)).toEqual(ids((r) => r.sub === "bob"));
      expect(await all({ mesh: "m1", name: "odd" }, 2)).toEqual(ids((r) => r.mesh === "m1" && r.name === "odd"));
      expect(await all({ meshes: [""] }, 2)).toEqual(ids((r) => r.mesh === ""));
      expect(await all({ meshes: [] }, 2)).toEqual([]);
      expect(await all({ since: 1_010, until: 1_030 }, 4)).toEqual(ids((r) => r.time >= 1_010 && r.time < 1_030));
    });

    it("when audit events are pruned, then only events older than the cutoff go, at most `limit` per call, across tenants", async () => {
      await st.appendAudit([auditRow({ time: 10 }), auditRow({ time: 20, tenant: "t2" }), auditRow({ time: 30 }), auditRow({ time: 40 })]);
      expect(await st.pruneAudit(35, 2)).toBe(2);
      expect(await st.pruneAudit(35, 2)).toBe(1);
      expect(await st.pruneAudit(35, 2)).toBe(0);
      expect((await st.listAudit("t1", { after: undefined, limit: 10 })).map((e) => e.time)).toEqual([40]);
      expect(await st.listAudit("t2", { after: undefined, limit: 10 })).toEqual([]);
    });

    it("when the trail is bounded by size, then the oldest events go first, across tenants, until the stored sizes fit; pruning by age keeps the sum", async () => {
      const rows = [auditRow({ time: 10 }), auditRow({ time: 20, tenant: "t2" }), auditRow({ time: 30 }), auditRow({ time: 40 }), auditRow({ time: 50, tenant: "t2" })];
      const size = (e: AuditRow): number => auditRowBytes(e, auditKeysJson(e.keys));
      const total = rows.reduce((n, e) => n + size(e), 0);
      await st.appendAudit(rows);
      expect(await st.pruneAuditBytes(total, 100)).toBe(0);
      // Just over: the oldest event alone covers the excess.
      expect(await st.pruneAuditBytes(total - 1, 100)).toBe(1);
      expect(await st.pruneAudit(25, 100)).toBe(1); // t2's event of time 20
      const left = total - size(rows[0]!) - size(rows[1]!);
      // Room for the two newest only: the one of time 30 goes, at most `limit` a call.
      expect(await st.pruneAuditBytes(size(rows[3]!) + size(rows[4]!), 100)).toBe(1);
      expect(await st.pruneAuditBytes(0, 1)).toBe(1);
      expect((await st.listAudit("t1", { after: undefined, limit: 10 })).map((e) => e.time)).toEqual([]);
      expect((await st.listAudit("t2", { after: undefined, limit: 10 })).map((e) => e.time)).toEqual([50]);
      expect(left).toBe(size(rows[2]!) + size(rows[3]!) + size(rows[4]!));
      expect(await st.pruneAuditBytes(size(rows[4]!), 100)).toBe(0);
      expect(await st.pruneAuditBytes(size(rows[4]!) - 1, 100)).toBe(1);
    });

    describe("change feed", () => {
      const scope = { tenant: "t1", mesh: "m1" };

      it("when each kind of write commits, then subscribers hear exactly one change for it, with a strictly increasing revision, before the write resolves", async () => {
        const r = recorder();
        const sub = st.changes.subscribe(r.listener);
        const start = st.changes.revision();
        expect(sub.revision).toBe(start);
        let s = secretRow();
        await st.insertSecret(s, versionRow(s));
        expect(r.changes().map((c) => c.kind)).toEqual(["secret-created"]);
        const next = { ...s, version: 2, etag: randomUUID() };
        await st.updateSecret(next, versionRow(next), s.etag, 10);
        s = next;
        await st.putGrant({ secretUid: s.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: clock });
        await st.deleteGrants(s.uid, "user:u", undefined);
        await st.replaceDeks([{ uid: s.uid, version: 2, oldDek: Buffer.from("dek-2"), newDek: Buffer.from("new-2") }]);
        await st.deleteSecret(s.uid, undefined);
        const got = r.changes();
        expect(got.map((c) => c.kind)).toEqual(["secret-created", "secret-updated", "grant-put", "grant-revoked", "secret-rekeyed", "secret-deleted"]);
        for (const c of got) expect(c).toMatchObject({ tenant: "t1", mesh: "m1", name: "s", uid: s.uid });
        got.forEach((c, i) => expect(c.revision).toBeGreaterThan(i === 0 ? start : got[i - 1]!.revision));
        expect(st.changes.revision()).toBe(got.at(-1)!.revision);
        sub.close();
      });

      it("when a write does not happen (exists, conflict, missing, nothing revoked), then no change is published", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s));
        const r = recorder();
        const sub = st.changes.subscribe(r.listener);
        const before = st.changes.revision();
        const dup = secretRow();
        expect(await st.insertSecret(dup, versionRow(dup))).toBe("exists");
        const stale = { ...s, version: 2, etag: randomUUID() };
        expect(await st.updateSecret(stale, versionRow(stale), "stale", 10)).toBe("conflict");
        expect(await st.deleteSecret(s.uid, "stale")).toBe("conflict");
        expect(await st.deleteSecret(randomUUID(), undefined)).toBe("missing");
        expect(await st.deleteGrants(s.uid, "user:nobody", undefined)).toBe(0);
        expect(await st.replaceDeks([{ uid: s.uid, version: 1, oldDek: Buffer.from("other"), newDek: Buffer.from("x") }])).toBe(0);
        expect(r.events).toEqual([]);
        expect(st.changes.revision()).toBe(before);
        sub.close();
      });

      it("when many writes commit together, then each is published once, in revision order, and a closed subscription hears nothing more", async () => {
        const r = recorder();
        const sub = st.changes.subscribe(r.listener);
        const rows = [...Array(20).keys()].map((i) => secretRow({ name: `n${i}` }));
        await Promise.all(rows.map((s) => st.insertSecret(s, versionRow(s))));
        const got = r.changes();
        expect(got.map((c) => c.uid).sort()).toEqual(rows.map((s) => s.uid).sort());
        for (let i = 1; i < got.length; i++) expect(got[i]!.revision).toBeGreaterThan(got[i - 1]!.revision);
        sub.close();
        const late = secretRow({ name: "late" });
        await st.insertSecret(late, versionRow(late));
        expect(r.changes()).toHaveLength(20);
      });

      it("when a subscriber resumes from a revision, then it first gets every change after it, then live ones", async () => {
        const a = secretRow({ name: "a" });
        await st.insertSecret(a, versionRow(a));
        const mark = st.changes.revision();
        const b = secretRow({ name: "b" });
        const c = secretRow({ name: "c" });
        await st.insertSecret(b, versionRow(b));
        await st.insertSecret(c, versionRow(c));
        const r = recorder();
        const sub = st.changes.subscribe(r.listener, mark);
        expect(r.changes().map((x) => x.name)).toEqual(["b", "c"]);
        expect(sub.revision).toBe(st.changes.revision());
        await st.deleteSecret(a.uid, undefined);
        expect(r.changes().map((x) => `${x.kind}:${x.name}`)).toEqual(["secret-created:b", "secret-created:c", "secret-deleted:a"]);
        sub.close();
        const now = recorder();
        st.changes.subscribe(now.listener, st.changes.revision()).close();
        expect(now.events).toEqual([]);
      });

      it("when the store is reopened, then revisions go on from where they were, never reused", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s));
        await st.deleteSecret(s.uid, undefined);
        const last = st.changes.revision();
        const peer = await factory.openPeer(st);
        try {
          expect(peer.changes.revision()).toBe(last);
          const t = secretRow();
          const r = recorder();
          const sub = peer.changes.subscribe(r.listener);
          await peer.insertSecret(t, versionRow(t));
          expect(r.changes()[0]!.revision).toBeGreaterThan(last);
          sub.close();
        } finally {
          await peer.close();
        }
      });

      it("when another process or replica commits, then this one's subscribers hear it, and reads here see it", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s, 1, "before"));
        expect(Buffer.from((await st.readSecret(scope, "s", 0))!.version!.payload).toString()).toBe("before"); // now cached
        const r = recorder();
        const sub = st.changes.subscribe(r.listener);
        const peer = await factory.openPeer(st);
        try {
          const next = { ...s, version: 2, etag: randomUUID() };
          expect(await peer.updateSecret(next, versionRow(next, 2, "after"), s.etag, 10)).toBe("ok");
          await eventually(() => r.changes().length === 1);
          expect(r.changes()[0]).toMatchObject({ kind: "secret-updated", uid: s.uid, name: "s" });
          expect(r.changes()[0]!.revision).toBe(peer.changes.revision());
          await new Promise((resolve) => setImmediate(resolve));
          expect(Buffer.from((await st.readSecret(scope, "s", 0))!.version!.payload).toString()).toBe("after");
          const g = { secretUid: s.uid, subject: "user:u", level: 2, keys: [], expireTime: undefined, grantedBy: "o", createTime: clock };
          await peer.putGrant(g);
          await eventually(() => r.changes().length === 2);
          expect(r.changes()[1]!.kind).toBe("grant-put");
        } finally {
          sub.close();
          await peer.close();
        }
      });
    });

    describe("change feed window", () => {
      let small: Storage;
      beforeEach(async () => {
        small = await factory.open({ feedRetain: 5 });
      });
      afterEach(async () => {
        await factory.destroy(small);
      });

      it("when a subscriber resumes from before the retained window, then it is told to resync instead of getting a gap", async () => {
        const first = secretRow({ name: "first" });
        await small.insertSecret(first, versionRow(first));
        const old = small.changes.revision();
        for (let i = 0; i < 40; i++) {
          const s = secretRow({ name: `w${i}` });
          await small.insertSecret(s, versionRow(s));
        }
        const r = recorder();
        const sub = small.changes.subscribe(r.listener, old - 1);
        expect(r.events).toEqual([{ type: "resync", revision: small.changes.revision(), reason: "compacted" }]);
        sub.close();
        // A subscriber within the window still gets exact changes.
        const recent = small.changes.revision() - 2;
        const r2 = recorder();
        small.changes.subscribe(r2.listener, recent).close();
        expect(r2.changes().map((c) => c.revision)).toEqual([recent + 1, recent + 2]);
      });
    });

    describe("consumer leases", () => {
      it("when leases are put, then the live ones of a secret are listed oldest first; lapsed, deleted and other secrets' are not", async () => {
        const s = secretRow();
        const other = secretRow({ name: "other" });
        await st.insertSecret(s, versionRow(s));
        await st.insertSecret(other, versionRow(other));
        await st.openReplica("r1", { now: 1000, expireTime: 31_000 });
        await st.openReplica("short", { now: 1000, expireTime: 5000 });
        const a = lease({ since: 1000, revision: "r-a" });
        const b = lease({ since: 2000, sub: "b", roles: [] });
        const lapsed = lease({ since: 1500, replica: "short" });
        expect(await st.putLeases(a, [s.uid, other.uid], 1000)).toBe(true);
        expect(await st.putLeases(b, [s.uid], 1000)).toBe(true);
        expect(await st.putLeases(lapsed, [s.uid], 1000)).toBe(true);
        expect(await st.listLeases(s.uid, 10_000)).toEqual([listed(a, s.uid, 1000, 31_000), listed(b, s.uid, 1000, 31_000)]);
        expect((await st.listLeases(s.uid, 4000)).map((l) => l.watchId)).toEqual([a.watchId, lapsed.watchId, b.watchId]);
        expect((await st.listLeases(other.uid, 10_000)).map((l) => l.watchId)).toEqual([a.watchId]);
        await st.deleteLeases(a.watchId);
        expect((await st.listLeases(s.uid, 10_000)).map((l) => l.watchId)).toEqual([b.watchId]);
        expect(await st.listLeases(other.uid, 10_000)).toEqual([]);
        await st.deleteLeases(b.watchId, [other.uid]);
        expect((await st.listLeases(s.uid, 10_000)).map((l) => l.watchId)).toEqual([b.watchId]);
        await st.deleteLeases(b.watchId, [s.uid]);
        expect(await st.listLeases(s.uid, 10_000)).toEqual([]);
      });

      it("when a watch's lease is put again, then its new secrets are added and its revision replaced", async () => {
        const s = secretRow();
        const t = secretRow({ name: "t" });
        await st.insertSecret(s, versionRow(s));
        await st.insertSecret(t, versionRow(t));
        await st.openReplica("r1", { now: 1000, expireTime: 31_000 });
        const w = lease({ revision: "one" });
        await st.putLeases(w, [s.uid], 1000);
        await st.putLeases({ ...w, revision: "two" }, [t.uid], 2000);
        expect((await st.listLeases(s.uid, 2000)).map((l) => l.revision)).toEqual(["two"]);
        expect((await st.listLeases(t.uid, 2000)).map((l) => l.watchId)).toEqual([w.watchId]);
      });

      it("when a watch records what it sent and an ack lands, then the row shows the applied revision and versions; an older ack is not written", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s));
        await st.openReplica("r1", { now: 1000, expireTime: 31_000 });
        const w = lease({ tenant: "t1", sub: "pete" });
        await st.putLeases(w, [s.uid], 1000);
        const src = (version: number) => [{ uid: s.uid, version, mesh: s.mesh, name: s.name }];
        const sent = [
          { seq: 1, revision: "a".repeat(64), sources: src(1) },
          { seq: 2, revision: "b".repeat(64), sources: src(2) },
        ];
        await st.recordSent([{ watchId: w.watchId, replica: "r1", sent }, { watchId: "gone", replica: "r1", sent }]);
        await st.recordSent([{ watchId: w.watchId, replica: "another", sent: sent.slice(0, 1) }]); // not its replica: ignored
        expect(await st.readWatch(w.watchId, 2000)).toEqual({ tenant: "t1", sub: "pete", sent, appliedSeq: 0 });
        expect(await st.readWatch(w.watchId, 31_000)).toBeUndefined(); // its heartbeat lapsed
        expect(await st.readWatch("unknown", 2000)).toBeUndefined();
        expect((await st.listLeases(s.uid, 2000))[0]!.revision).toBe("b".repeat(64));
        expect(await st.recordAck(w.watchId, { seq: 2, revision: "b".repeat(64), time: 2500, applied: src(2) })).toBe(true);
        expect(await st.recordAck(w.watchId, { seq: 1, revision: "a".repeat(64), time: 2600, applied: src(1) })).toBe(false);
        expect((await st.listLeases(s.uid, 3000))[0]).toMatchObject({ appliedRevision: "b".repeat(64), appliedTime: 2500, applied: src(2) });
        expect((await st.readWatch(w.watchId, 3000))!.appliedSeq).toBe(2);
      });

      it("when a replica renews, then all its leases live on with the new revisions in one row written, however many sources; others' are untouched", async () => {
        const secrets = Array.from({ length: 64 }, (_, i) => secretRow({ name: `src-${i}` }));
        for (const s of secrets) await st.insertSecret(s, versionRow(s));
        const uids = secrets.map((s) => s.uid);
        await st.openReplica("r1", { now: 1000, expireTime: 31_000 });
        await st.openReplica("r2", { now: 1000, expireTime: 31_000 });
        const mine = Array.from({ length: 32 }, (_, i) => lease({ replica: "r1", since: 1000 + i }));
        for (const l of mine) await st.putLeases(l, uids, 1000); // 32 watches x 64 sources
        const theirs = lease({ replica: "r2", since: 5000 });
        await st.putLeases(theirs, uids, 1000);
        expect(await st.renewLeases("r1", { now: 25_000, expireTime: 55_000 }, new Map())).toBe(1); // the heartbeat row, not 2,048 leases
        expect(await st.renewLeases("r1", { now: 26_000, expireTime: 56_000 }, new Map([[mine[0]!.watchId, "rev-2"], [theirs.watchId, "not-mine"]]))).toBe(2);
        const live = await st.listLeases(uids[7]!, 40_000);
        expect(live).toHaveLength(32);
        expect(live[0]).toEqual(listed({ ...mine[0]!, revision: "rev-2" }, uids[7]!, 26_000, 56_000));
        expect(live.every((l) => l.replica === "r1" && l.expireTime === 56_000)).toBe(true);
        const atRenewal = await st.listLeases(uids[7]!, 26_000);
        expect(atRenewal.filter((l) => l.replica === "r2").map((l) => [l.watchId, l.revision])).toEqual([[theirs.watchId, ""]]);
        await st.deleteReplicaLeases("r1");
        expect((await st.listLeases(uids[7]!, 26_000)).map((l) => l.replica)).toEqual(["r2"]);
      });

      it("when a heartbeat has lapsed, then it is not renewed nor given new leases, and its rows are pruned by a renewal", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s));
        await st.openReplica("dead", { now: 1000, expireTime: 20_000 });
        await st.openReplica("alive", { now: 1000, expireTime: 31_000 });
        await st.putLeases(lease({ replica: "dead" }), [s.uid], 1000);
        await st.putLeases(lease({ replica: "alive", since: 2000 }), [s.uid], 1000);
        expect((await st.listLeases(s.uid, 21_000)).map((l) => l.replica)).toEqual(["alive"]);
        expect(await st.listLeases(s.uid, 1000)).toHaveLength(2); // (as of before it lapsed)
        expect(await st.renewLeases("alive", { now: 21_000, expireTime: 46_000 }, new Map())).toBe(1);
        expect((await st.listLeases(s.uid, 1000)).map((l) => l.replica)).toEqual(["alive"]); // pruned, not only lapsed
        expect(await st.renewLeases("dead", { now: 21_000, expireTime: 46_000 }, new Map())).toBe(0);
        expect(await st.putLeases(lease({ replica: "dead" }), [s.uid], 21_000)).toBe(false);
        expect(await st.putLeases(lease({ replica: "never-opened" }), [s.uid], 21_000)).toBe(false);
        expect((await st.listLeases(s.uid, 21_000)).map((l) => l.replica)).toEqual(["alive"]);
      });

      it("when the secret is deleted, then its leases go with it; a lease on a missing secret is not recorded", async () => {
        const s = secretRow();
        await st.insertSecret(s, versionRow(s));
        await st.openReplica("r1", { now: 1000, expireTime: 31_000 });
        const ghost = secretRow({ name: "ghost" });
        const w = lease();
        await st.putLeases(w, [s.uid, ghost.uid], 1000);
        expect(await st.listLeases(s.uid, 2000)).toHaveLength(1);
        await st.deleteSecret(s.uid, undefined);
        expect(await st.listLeases(s.uid, 2000)).toEqual([]);
        await st.insertSecret(ghost, versionRow(ghost));
        expect(await st.listLeases(ghost.uid, 2000)).toEqual([]);
        const again = secretRow();
        await st.insertSecret(again, versionRow(again));
        expect(await st.listLeases(again.uid, 2000)).toEqual([]);
      });
    });
  });
}
