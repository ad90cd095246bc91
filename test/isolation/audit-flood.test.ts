/**
 * Noisy neighbour, audit trail (#27 item 6): an attacker tenant floods the server with
 * audited calls past its small per-tenant quota. The victim tenant's events must all be
 * there; the attacker's events past the quota are not kept but counted, in one
 * AuditEventsSuppressed event per flush window, so that what it did is never lost silently.
 */
import { Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { AuditEvent, ListAuditEventsResponse } from "../../src/gen/secrets/v1/secrets.js";
import { SUPPRESSED_METHOD } from "../../src/audit/audit-trail.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const QUOTA = 20;
const FLOOD = 400;
const VICTIM_READS = 12;

let server: TestServer;

beforeAll(async () => {
  // In process (app.audit is the trail itself), whatever SECRETD_E2E_WORKERS says.
  server = await startTestServer({ auditMaxEventsPerTenant: String(QUOTA), workers: "1" });
});

afterAll(async () => {
  await server.stop();
});

function withRequestId(id: string): Metadata {
  const md = new Metadata();
  md.set("x-request-id", id);
  return md;
}

async function allEvents(token: string, req: object = {}): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let pageToken = "";
  for (;;) {
    const page = await server.call<ListAuditEventsResponse>("listAuditEvents", { ...req, pageSize: 1000, pageToken }, token);
    out.push(...page.events);
    if (page.nextPageToken === "") return out;
    pageToken = page.nextPageToken;
  }
}

it("when one tenant floods audited calls past its quota, then every event of another tenant is recorded, and the flood's excess is counted in AuditEventsSuppressed events, not lost", async () => {
  const attacker = await server.token({ tenant: "evil", sub: "mallory", roles: [] });
  const attackerAdmin = await server.token({ tenant: "evil", sub: "eve", roles: ["tenant-admin"] });
  const victim = await server.token({ tenant: "acme", sub: "app", roles: ["data-developer"] });
  const victimAdmin = await server.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
  await server.call("createSecret", { mesh: "default", name: "db", stringData: { password: "flood-test-value" } }, victim, withRequestId("victim-create"));

  // The flood and the victim's reads, interleaved, all in flight together.
  const flood = Array.from({ length: FLOOD }, (_, i) => codeOf(server.call("getSecret", { mesh: "default", name: `nothing-${i}` }, attacker, withRequestId(`flood-${i}`))));
  const reads = Array.from({ length: VICTIM_READS }, (_, i) => server.call("getSecret", { mesh: "default", name: "db" }, victim, withRequestId(`victim-${i}`)));
  expect(new Set(await Promise.all(flood))).toEqual(new Set([status.NOT_FOUND]));
  await Promise.all(reads);
  await server.app.audit.endWindow(); // the window's counts become events, and all is written

  const victims = await allEvents(victimAdmin);
  const ids = victims.map((e) => e.requestId);
  expect(ids).toContain("victim-create");
  for (let i = 0; i < VICTIM_READS; i++) expect(ids).toContain(`victim-${i}`);
  expect(victims.filter((e) => e.method === SUPPRESSED_METHOD)).toEqual([]);

  const evil = await allEvents(attackerAdmin);
  const kept = evil.filter((e) => e.method === "GetSecret");
  const suppressed = evil.filter((e) => e.method === SUPPRESSED_METHOD);
  expect(suppressed.length).toBeGreaterThan(0);
  for (const s of suppressed) expect(s).toMatchObject({ sub: "mallory", code: "RESOURCE_EXHAUSTED", mesh: "", name: "" });
  expect(kept.length).toBeLessThan(FLOOD);
  // Every call of the flood is accounted for: recorded, or counted in a suppressed event.
  expect(kept.length + suppressed.reduce((n, s) => n + Number(s.version), 0)).toBe(FLOOD);
  expect(server.app.audit.suppressed).toBe(FLOOD - kept.length);
});
