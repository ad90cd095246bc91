import { afterEach, expect, it } from "vitest";
import { AuditTrail, SUPPRESSED_METHOD } from "../../src/audit/audit-trail.js";
import type { AuditRow } from "../../src/storage/storage.js";
import { auditRow } from "../conformance/storage-suite.js";

const silent = { error() {}, warn() {}, info() {} } as never;
const trails: AuditTrail[] = [];
afterEach(async () => {
  for (const t of trails.splice(0)) await t.close();
});

/** A storage that fails while `down`, and keeps what it is given. */
function flakyStorage() {
  const stored: AuditRow[] = [];
  const s = {
    down: true,
    stored,
    async appendAudit(events: readonly AuditRow[]) {
      if (s.down) throw new Error("database unreachable");
      stored.push(...events);
    },
    async pruneAudit() {
      return 0;
    },
    async pruneAuditBytes() {
      return 0;
    },
  };
  return s;
}

it("when the queue is full while storage fails, then room is made from the tenant holding the most: another tenant's events all survive, and the flood's are counted", async () => {
  const storage = flakyStorage();
  const trail = new AuditTrail({ storage, logger: silent, retentionMs: 86_400_000, maxQueue: 100, batchSize: 50, flushIntervalMs: 3_600_000 });
  trails.push(trail);
  for (let i = 0; i < 1000; i++) {
    trail.record(auditRow({ tenant: "evil", requestId: `e${i}` }));
    if (i % 100 === 0) trail.record(auditRow({ tenant: "acme", requestId: `v${i / 100}` }));
    if (i % 250 === 0) await trail.flush(); // fails; the batch goes back
  }
  expect(trail.depth).toBe(100);
  storage.down = false;
  await trail.endWindow();
  const victim = storage.stored.filter((e) => e.tenant === "acme").map((e) => e.requestId);
  expect(victim).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
  const evil = storage.stored.filter((e) => e.tenant === "evil");
  const counted = evil.filter((e) => e.method === SUPPRESSED_METHOD);
  expect(counted).toHaveLength(1);
  expect(evil.length - 1 + counted[0]!.version).toBe(1000);
  expect(trail.suppressed).toBe(counted[0]!.version);
});

it("when a tenant passes its quota in a window, then one event counts the rest; the next window starts over; other tenants are not affected", async () => {
  const storage = flakyStorage();
  storage.down = false;
  const trail = new AuditTrail({ storage, logger: silent, retentionMs: 86_400_000, tenantQuota: 5, flushIntervalMs: 3_600_000 });
  trails.push(trail);
  for (let i = 0; i < 12; i++) trail.record(auditRow({ tenant: "evil", sub: `s${i}`, peer: `p${i}` }));
  for (let i = 0; i < 5; i++) trail.record(auditRow({ tenant: "acme" }));
  await trail.endWindow();
  for (let i = 0; i < 6; i++) trail.record(auditRow({ tenant: "evil" }));
  await trail.endWindow();
  await trail.endWindow(); // nothing suppressed: no event
  const evil = storage.stored.filter((e) => e.tenant === "evil");
  expect(evil.filter((e) => e.method !== SUPPRESSED_METHOD)).toHaveLength(10);
  expect(evil.filter((e) => e.method === SUPPRESSED_METHOD).map((e) => [e.version, e.sub, e.peer, e.code])).toEqual([
    [7, "s11", "p11", "RESOURCE_EXHAUSTED"],
    [1, "alice", "127.0.0.1:1234", "RESOURCE_EXHAUSTED"],
  ]);
  expect(storage.stored.filter((e) => e.tenant === "acme")).toHaveLength(5);
});
