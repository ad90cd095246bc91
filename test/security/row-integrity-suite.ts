/**
 * The row-integrity suite (issue #16 item 13), one list of scenarios run against each
 * back-end: row-integrity.test.ts on a SQLite file, row-integrity-postgres.test.ts on a
 * PostgreSQL database behind two replicas. Someone with SQL access to the store (a DBA, a
 * leaked connection string, a copy of the file) but no KEK rolls a secret back to an
 * older version, replays an older copy of a row, makes oneself owner, adds, widens,
 * revives or removes a grant, lifts immutability or expiry, nulls a MAC, copies another
 * row's MAC, re-points a create request, and forges the backfill mark. Each must answer
 * DATA_LOSS for the secret touched (the message a bad ciphertext gets) through every
 * server, leave it out of listings, and leave every other secret served. The edits are
 * written once, in the SQL core's `sql` tag, and run in the store's own dialect.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { dialect, sql, type Sql } from "../../src/storage/sql/sql.js";
import { runCli } from "../helpers/cli.js";
import type { TestServer } from "../helpers/server.js";

export const M = "rows";
export const ALICE = { tenant: "acme", sub: "alice", roles: ["data-developer"] };
export const MALLORY = { tenant: "acme", sub: "mallory", roles: ["data-developer"] };
export const BOB = { tenant: "acme", sub: "bob", roles: [] };
export const DATA_LOSS_MESSAGE = "stored secret data failed to authenticate";

/** The value of key `k` (default "v") read by GetSecret, or the status code. */
export async function read(s: TestServer, token: string, name: string, opts: { version?: number; key?: string } = {}): Promise<string | number> {
  try {
    const got = await s.call<Secret>("getSecret", { mesh: M, name, version: opts.version ?? 0 }, token);
    return Buffer.from(got.data[opts.key ?? "v"] ?? new Uint8Array()).toString("utf8");
  } catch (e) {
    const err = e as ServiceError;
    if (err.code === status.DATA_LOSS) expect(err.details).toBe(DATA_LOSS_MESSAGE);
    return err.code;
  }
}

export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return status.OK;
  } catch (e) {
    return (e as ServiceError).code;
  }
}

export async function listed(s: TestServer, token: string): Promise<string[]> {
  return (await s.call<{ secrets: Secret[] }>("listSecrets", { mesh: M }, token)).secrets.map((x) => x.name);
}

/**
 * The log lines matching `pred`, once there is one: a --workers server (SECRETD_E2E_WORKERS)
 * writes its logs through a buffer flushed every second, so a line may arrive after start.
 */
export async function logged(s: TestServer, pred: (line: string) => boolean): Promise<string[]> {
  for (let end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    if (s.logs.some(pred)) break;
  }
  return s.logs.filter(pred);
}

/** One store with its servers, as a back-end's runner sets it up. */
export interface Rig {
  /** Every server on the store (same KEK and JWT key); the first makes the secrets, each is read through. */
  servers: TestServer[];
  /**
   * Plain SQL on the store, in its own dialect, by someone holding no KEK: the statements
   * in one transaction, without a turn of the event loop between them on SQLite (an edit
   * landing between two of the feed's polls together with a housekeeping commit goes
   * unnoticed there: sqlite-change-feed.ts).
   */
  edit(edits: ReadonlyArray<readonly [Sql, object]>): Promise<void>;
  rows<T>(q: Sql, binds?: object): Promise<T[]>;
  /** `secretd doctor`'s flags for this store. */
  readonly doctorArgs: readonly string[];
  /** Stops every server, runs `between`, starts them again on the same store. */
  restart(between: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** `UPDATE table SET every column = its value in row WHERE uid = row.uid`. */
function setAll(table: string, row: Record<string, unknown>): Sql {
  const cols = Object.keys(row).filter((c) => c !== "uid");
  return sql([`UPDATE ${table} SET ${cols[0]} = `, ...cols.slice(1).map((c) => `, ${c} = `), " WHERE uid = ", ""], ...cols, "uid");
}

const FALSE = dialect("0", "false");

export function runRowIntegritySuite(store: string, open: () => Promise<Rig>): void {
  describe(`plain SQL edits of metadata rows (${store})`, () => {
    let rig: Rig;
    let alice: string;
    let mallory: string;
    let bob: string;
    let savedReplayRow: Record<string, unknown>;

    const first = (): TestServer => rig.servers[0]!;
    const uidOf = async (name: string): Promise<string> =>
      (await rig.rows<{ uid: string }>(sql`SELECT uid FROM secrets WHERE tenant = 'acme' AND mesh = ${"mesh"} AND name = ${"name"}`, { mesh: M, name }))[0]!.uid;
    const create = (name: string, extra: object = {}): Promise<Secret> => first().call<Secret>("createSecret", { mesh: M, name, stringData: { v: `${name}-v1` }, ...extra }, alice);
    const last = (): TestServer => rig.servers[rig.servers.length - 1]!;

    beforeAll(async () => {
      rig = await open();
      const s = first();
      [alice, mallory, bob] = await Promise.all([s.token(ALICE), s.token(MALLORY), s.token(BOB)]);
      for (const n of ["keep", "owned", "granted", "nulled", "copied-mac", "deleted-grant"]) await create(n);
      await create("frozen", { immutable: true });
      await create("expired", { expireTime: new Date(s.clock.now() + s.clock.lapseMs) });
      await create("widened", { stringData: { a: "widened-a", b: "widened-b" } });
      await create("revived");
      await create("req-a", { requestId: "req-1" });
      await create("req-b");
      for (const n of ["rollback", "replay"]) {
        const v1 = await create(n);
        if (n === "replay") savedReplayRow = (await rig.rows<Record<string, unknown>>(sql`SELECT * FROM secrets WHERE uid = ${"uid"}`, { uid: await uidOf(n) }))[0]!;
        await last().call("updateSecret", { mesh: M, name: n, etag: v1.etag, stringData: { v: `${n}-v2` } }, alice);
      }
      const grant = (name: string, permission: Permission, extra: object = {}) => last().call("grantAccess", { mesh: M, name, subject: "user:bob", permission, ...extra }, alice);
      await grant("widened", Permission.PERMISSION_READ, { keys: ["a"] });
      await grant("revived", Permission.PERMISSION_READ, { expireTime: new Date(s.clock.now() + s.clock.lapseMs) });
      await grant("deleted-grant", Permission.PERMISSION_READ);
      // "expired" and bob's grant on "revived" are past their expire_time now, on every server's clock.
      await Promise.all(rig.servers.map((x) => x.clock.advance(x.clock.lapseMs + 100)));
    }, 60_000);

    afterAll(async () => {
      await rig?.close();
    });

    it("when nothing was touched, then each secret answers as its rows say, through every server", async () => {
      for (const s of rig.servers) {
        expect(await read(s, alice, "rollback")).toBe("rollback-v2");
        expect(await read(s, alice, "replay")).toBe("replay-v2");
        expect(await read(s, mallory, "owned")).toBe(status.NOT_FOUND);
        expect(await read(s, mallory, "granted")).toBe(status.NOT_FOUND);
        expect(await read(s, bob, "widened", { key: "a" })).toBe("widened-a");
        expect(await codeOf(s.call("getSecret", { mesh: M, name: "widened", keys: ["b"] }, bob))).toBe(status.PERMISSION_DENIED);
        expect(await read(s, bob, "revived")).toBe(status.NOT_FOUND);
        expect(await read(s, alice, "expired")).toBe(status.FAILED_PRECONDITION);
        expect(await read(s, bob, "deleted-grant")).toBe("deleted-grant-v1");
        expect(await read(s, alice, "copied-mac")).toBe("copied-mac-v1");
        const frozen = await s.call<Secret>("getSecret", { mesh: M, name: "frozen" }, alice);
        expect(await codeOf(s.call("updateSecret", { mesh: M, name: "frozen", etag: frozen.etag, stringData: { v: "x" } }, alice))).toBe(status.FAILED_PRECONDITION);
        expect(await listed(s, mallory)).toEqual([]);
      }
    });

    it("when rows are edited by plain SQL, then DATA_LOSS for those secrets only through every server, they leave listings, and every other secret is still served", async () => {
      const uids = Object.fromEntries(
        await Promise.all(["rollback", "owned", "granted", "widened", "revived", "deleted-grant", "frozen", "expired", "nulled", "copied-mac", "req-b"].map(async (n) => [n, await uidOf(n)])),
      ) as Record<string, string>;
      const on = (name: string) => ({ uid: uids[name] });
      await rig.edit([
        // Roll the current-version pointer back (the older version row is still stored and opens).
        [sql`UPDATE secrets SET version = 1 WHERE uid = ${"uid"}`, on("rollback")],
        // Restore a whole older genuine copy of the row, its MAC included, while the newer version is stored.
        [setAll("secrets", savedReplayRow), savedReplayRow],
        // Make oneself owner; add a grant to oneself.
        [sql`UPDATE secrets SET owner = 'mallory' WHERE uid = ${"uid"}`, on("owned")],
        [sql`INSERT INTO grants (secret_uid, subject, permission, keys, expire_time, granted_by, create_time) VALUES (${"uid"}, 'user:mallory', 2, '[]', NULL, 'alice', 1)`, on("granted")],
        // Widen a key-limited READ grant to ADMIN on every key; revive an expired grant.
        [sql`UPDATE grants SET permission = 4, keys = '[]' WHERE secret_uid = ${"uid"} AND subject = 'user:bob'`, on("widened")],
        [sql`UPDATE grants SET expire_time = NULL WHERE secret_uid = ${"uid"} AND subject = 'user:bob'`, on("revived")],
        // Remove a grant row (no row left to carry a MAC of its own).
        [sql`DELETE FROM grants WHERE secret_uid = ${"uid"}`, on("deleted-grant")],
        // Lift immutability; lift an expiry that has passed.
        [sql`UPDATE secrets SET immutable = ${FALSE} WHERE uid = ${"uid"}`, on("frozen")],
        [sql`UPDATE secrets SET expire_time = NULL WHERE uid = ${"uid"}`, on("expired")],
        // Null the MAC itself; copy another row's genuine MAC (bound to that row's uid and fields, it does not fit).
        [sql`UPDATE secrets SET mac = NULL WHERE uid = ${"uid"}`, on("nulled")],
        [sql`UPDATE secrets SET mac = (SELECT k.mac FROM secrets k WHERE k.name = 'keep') WHERE uid = ${"uid"}`, on("copied-mac")],
        // Re-point a create request at another secret.
        [sql`UPDATE create_requests SET secret_uid = ${"uid"} WHERE request_id = 'req-1'`, on("req-b")],
      ]);

      for (const s of rig.servers) {
        // Twice: the second read may be served from a cache, and must answer the same.
        for (let round = 0; round < 2; round++) {
          expect(await read(s, alice, "rollback")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "rollback", { version: 1 })).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "replay")).toBe(status.DATA_LOSS);
          expect(await read(s, mallory, "owned")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "owned")).toBe(status.DATA_LOSS);
          expect(await read(s, mallory, "granted")).toBe(status.DATA_LOSS);
          expect(await read(s, bob, "widened", { key: "b" })).toBe(status.DATA_LOSS);
          expect(await read(s, bob, "revived")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "deleted-grant")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "expired")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "nulled")).toBe(status.DATA_LOSS);
          expect(await read(s, alice, "copied-mac")).toBe(status.DATA_LOSS);
          expect(await codeOf(s.call("updateSecret", { mesh: M, name: "frozen", etag: "any", stringData: { v: "x" } }, alice))).toBe(status.DATA_LOSS);
          expect(await codeOf(s.call("grantAccess", { mesh: M, name: "granted", subject: "user:eve", permission: Permission.PERMISSION_READ }, alice))).toBe(status.DATA_LOSS);
          expect(await codeOf(s.call("createSecret", { mesh: M, name: "req-a", stringData: { v: "req-a-v1" }, requestId: "req-1" }, alice))).toBe(status.DATA_LOSS);
          expect(await codeOf(s.call("projectSecrets", { mesh: M, items: [{ name: "revived" }] }, bob))).toBe(status.DATA_LOSS);
          // Every other secret is served as before.
          expect(await read(s, alice, "keep")).toBe("keep-v1");
          expect(await read(s, alice, "req-b")).toBe("req-b-v1");
        }
        // Listings leave the tampered rows out; mallory sees nothing, bob sees no revived or widened secret.
        expect(await listed(s, mallory)).toEqual([]);
        expect(await listed(s, bob)).toEqual([]);
        const mine = await listed(s, alice);
        expect(mine).toEqual(expect.arrayContaining(["keep", "req-a", "req-b", "granted", "widened", "revived", "deleted-grant"]));
        for (const n of ["rollback", "replay", "frozen", "expired", "nulled", "copied-mac", "owned"]) expect(mine).not.toContain(n);
      }
      expect(await logged(first(), (l) => l.includes("failed to authenticate") && l.includes('"name":"frozen"'))).not.toEqual([]);
      // Writes go on, through every server.
      await create("after");
      expect(await read(last(), alice, "after")).toBe("after-v1");
    });

    it("when `secretd doctor` runs on the edited store next to the servers, then it names every secret whose rows do not authenticate, with what failed, no value, and exits 1", async () => {
      const r = await runCli(["doctor", ...rig.doctorArgs]);
      expect(r.status).toBe(1);
      const failing = r.out.split("\n").filter((l) => l.startsWith("FAIL") && l.includes("rows do not authenticate"));
      const named = failing.map((l) => /secret "([^"]+)"/.exec(l)![1]).sort();
      // req-b holds the re-pointed create request now: that row's MAC binds it to req-a.
      expect(named).toEqual(["copied-mac", "deleted-grant", "expired", "frozen", "granted", "nulled", "owned", "replay", "req-b", "revived", "rollback", "widened"]);
      expect(failing.find((l) => l.includes('"rollback"'))).toContain("(rollback)");
      expect(failing.find((l) => l.includes('"nulled"'))).toContain("no MAC");
      expect(failing.find((l) => l.includes('"granted"'))).toContain("grants of secret");
      expect(r.out).toMatch(/checked the row MACs of \d+ secrets: \d+ authenticate, 12 do not/);
      for (const v of ["keep-v1", "rollback-v2", "widened-b", "req-b-v1"]) expect(r.out + r.err).not.toContain(v);
    });

    it("when the backfill mark is forged after MACs exist, then a restart refuses the backfill and the nulled MAC stays DATA_LOSS", async () => {
      await rig.restart(() => rig.edit([[sql`INSERT INTO mac_backfill (id) VALUES (1)`, {}]]));
      alice = await first().token(ALICE);
      expect(await logged(first(), (l) => l.includes("refused"))).not.toEqual([]);
      for (const s of rig.servers) {
        expect(await read(s, alice, "nulled")).toBe(status.DATA_LOSS);
        expect(await read(s, alice, "frozen")).toBe(status.DATA_LOSS);
        expect(await read(s, alice, "keep")).toBe("keep-v1");
      }
    });
  });
}
