/**
 * The watch hub over a real SqliteStorage and the real domain, with a sink the test
 * controls: coalescing (one message in flight, then the latest state), resync after the
 * feed was compacted past it, and the open-watch count.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { loadKeyring, type Keyring } from "../../src/crypto/keyring.js";
import { Secrets } from "../../src/domain/secrets.js";
import { ProjectSecretsRequest, type Projection } from "../../src/gen/secrets/v1/secrets.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import { ConsumerLeases } from "../../src/watch/consumer-leases.js";
import { WatchHub } from "../../src/watch/watch-hub.js";
import { eventually } from "../conformance/storage-suite.js";

let dir: string;
let st: SqliteStorage;
let keyring: Keyring;
let secrets: Secrets;
let hub: WatchHub;
const owner = { sub: "o", tenant: "t", roles: ["data-developer"], meshes: undefined, exp: undefined };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-hub-"));
  st = new SqliteStorage(path.join(dir, "db.sqlite"));
  keyring = loadKeyring(path.join(dir, "kek.json"), { create: true, warn: () => {} });
  secrets = new Secrets({ storage: st, keyring, creatorRoles: ["data-developer"], maxVersions: 10 });
  const leases = new ConsumerLeases(st, { ttlMs: 25_000, renewMs: 8_000, replica: "test" });
  hub = new WatchHub({ projection: { storage: st, keyring }, feed: st.changes, leases, maxWatchesPerTenant: 10 });
});

afterEach(async () => {
  await hub.shutdown();
  await st.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A sink that hands messages over only when the test says so. */
function heldSink() {
  const sent: Projection[] = [];
  const pending: Array<() => void> = [];
  const ended: unknown[] = [];
  return {
    sent,
    ended,
    pendingCount: () => pending.length,
    flush: () => pending.splice(0).forEach((f) => f()),
    sink: { send: (m: Projection, flushed: () => void) => (sent.push(m), pending.push(flushed)), end: (e: unknown) => ended.push(e) },
  };
}

async function put(name: string, v: string): Promise<void> {
  const cur = await st.readSecret({ tenant: "t", mesh: "m" }, name, 0);
  if (!cur) await secrets.create(owner, { mesh: "m", name, type: "", data: {}, stringData: { v }, description: "", labels: {}, annotations: {}, immutable: false, expireTime: undefined, requestId: "" });
  else await secrets.update(owner, { mesh: "m", name, etag: cur.secret.etag, data: {}, stringData: { v }, description: "", labels: {}, annotations: {}, expireTime: undefined, updateMask: ["data"] });
}

const valueOf = (p: Projection | undefined): string => Buffer.from(p?.values[0]?.value ?? []).toString();

/**
 * A watch on "mark" whose messages go straight through. The feed hands changes to the hub
 * in commit order, so the message of a "mark" write made after other writes comes once
 * the hub has dealt with those: "nothing was sent" is checked after it, not after a sleep
 * (a message sent late still fails the check).
 */
async function marker(): Promise<() => Promise<void>> {
  await put("mark", "0");
  const sent: Projection[] = [];
  hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "mark" }] }), {
    send: (m: Projection, flushed: () => void) => (sent.push(m), flushed()),
    end: () => undefined,
  });
  await eventually(() => sent.length === 1);
  return async () => {
    await put("mark", `${sent.length}`);
    const want = sent.length + 1;
    await eventually(() => sent.length >= want);
  };
}

it("when the reader has not taken a message, then a burst of changes sends nothing more; once it has, exactly one message with the latest state follows", async () => {
  await put("s", "v0");
  const h = heldSink();
  hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "s" }] }), h.sink);
  await eventually(() => h.sent.length === 1);
  const passed = await marker();
  for (let i = 1; i <= 25; i++) await put("s", `v${i}`);
  await passed();
  expect(h.sent).toHaveLength(1); // the first is still with the transport: nothing queued behind it
  h.flush();
  await eventually(() => h.sent.length === 2);
  expect(valueOf(h.sent[1])).toBe("v25");
  h.flush();
  await passed();
  expect(h.sent).toHaveLength(2);
  expect(h.ended).toEqual([]);
  expect(hub.openWatches).toBe(2); // "s" and the marker
});

it("when the feed tells the hub to resync (compacted past it), then every watch re-reads and only an affected one hears of it", async () => {
  await put("a", "1");
  await put("b", "1");
  const ha = heldSink();
  const hb = heldSink();
  hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "a" }] }), ha.sink);
  hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "b" }] }), hb.sink);
  await eventually(() => ha.sent.length === 1 && hb.sent.length === 1);
  ha.flush();
  hb.flush();
  const passed = await marker();
  // Another connection deletes "a" and the feed's window is compacted past this process, its change row gone.
  const Database = (await import("better-sqlite3")).default;
  const other = new Database(path.join(dir, "db.sqlite"));
  other.prepare("DELETE FROM secrets WHERE name = 'a'").run();
  other.prepare("INSERT INTO changes (kind, tenant, mesh, name, uid, time) VALUES ('secret-updated', 'x', 'x', 'x', 'x', 0)").run();
  other.prepare("INSERT INTO changes (kind, tenant, mesh, name, uid, time) VALUES ('secret-updated', 'x', 'x', 'x', 'x', 0)").run();
  other.prepare("DELETE FROM changes WHERE revision < (SELECT max(revision) FROM changes)").run();
  other.prepare("UPDATE change_compaction SET revision = (SELECT max(revision) - 1 FROM changes)").run();
  other.close();
  await eventually(() => ha.ended.length === 1);
  expect(ha.ended[0]).toMatchObject({ code: "NOT_FOUND" });
  await passed();
  expect(hb.sent).toHaveLength(1);
});

it("when the hub shuts down, then every watch ends with UNAVAILABLE and new ones are refused", async () => {
  await put("s", "1");
  const h = heldSink();
  hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "s" }] }), h.sink);
  await eventually(() => h.sent.length === 1);
  await hub.shutdown();
  expect(h.ended).toEqual([expect.objectContaining({ code: "UNAVAILABLE" })]);
  expect(hub.openWatches).toBe(0);
  expect(() => hub.open(owner, ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "s" }] }), heldSink().sink)).toThrow(/shutting down/);
});
