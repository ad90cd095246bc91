/**
 * Noisy neighbour, audit trail (#27 item 6): an attacker tenant floods the server with
 * audited calls past its small per-tenant quota. The victim tenant's events must all be
 * there; the attacker's events past the quota are not kept but counted, in one
 * AuditEventsSuppressed event per flush window, so that what it did is never lost silently.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SUPPRESSED_METHOD } from "../../src/audit/audit-trail.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, attackerToken, auditEvents, startVictim, withRequestId, type Victim } from "./harness.js";

const QUOTA = 20;
const FLOOD = 400;
/** Each is two audited calls (harness.ts): with the victim's create, 13 events, under its quota. */
const VICTIM_CALLS = 6;

let server: TestServer;
let victim: Victim;

beforeAll(async () => {
  // In process (app.audit is the trail itself), whatever SECRETD_E2E_WORKERS says.
  server = await startTestServer({ auditMaxEventsPerTenant: String(QUOTA), workers: "1" });
  victim = await startVictim(server);
});

afterAll(async () => {
  await server.stop();
});

it("when one tenant floods audited calls past its quota, then every event of another tenant is recorded, and the flood's excess is counted in AuditEventsSuppressed events, not lost", async () => {
  const attacker = await attackerToken(server);
  const evilAdmin = await attackerAdmin(server);

  // The flood and the victim's calls, interleaved, all in flight together.
  const flood = Array.from({ length: FLOOD }, (_, i) => codeOf(server.call("getSecret", { mesh: "default", name: `nothing-${i}` }, attacker, withRequestId(`flood-${i}`))));
  const calls = Array.from({ length: VICTIM_CALLS }, (_, i) => victim.calls(`victim-${i}`));
  expect(new Set(await Promise.all(flood))).toEqual(new Set([status.NOT_FOUND]));
  const ids = (await Promise.all(calls)).flat();
  await server.app.audit.endWindow(); // the window's counts become events, and all is written

  await victim.expectAudited(ids);
  expect((await auditEvents(server, victim.admin)).filter((e) => e.method === SUPPRESSED_METHOD)).toEqual([]);

  const evil = await auditEvents(server, evilAdmin);
  const kept = evil.filter((e) => e.method === "GetSecret");
  const suppressed = evil.filter((e) => e.method === SUPPRESSED_METHOD);
  expect(suppressed.length).toBeGreaterThan(0);
  for (const s of suppressed) expect(s).toMatchObject({ sub: "mallory", code: "RESOURCE_EXHAUSTED", mesh: "", name: "" });
  expect(kept.length).toBeLessThan(FLOOD);
  // Every call of the flood is accounted for: recorded, or counted in a suppressed event.
  expect(kept.length + suppressed.reduce((n, s) => n + Number(s.version), 0)).toBe(FLOOD);
  expect(server.app.audit.suppressed).toBe(FLOOD - kept.length);
});
