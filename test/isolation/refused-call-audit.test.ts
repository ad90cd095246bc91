/**
 * #27 item 6: a role-less caller's ProjectSecrets of 400,000 items is refused (at most
 * 256 items) after authentication, and was audited as 400,000 events, which flooded the
 * one shared audit queue and dropped other tenants' events. A refused call is ONE event:
 * past 4,096 entries of a field it is refused on the wire, before it is decoded; past the
 * 256 items a projection may hold, the event carries the counts.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectSecretsRequest } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, attackerToken, eventsOf, startVictim, withRequestId, type Victim } from "./harness.js";

const ITEMS = 400_000;
const items = Array.from({ length: ITEMS }, () => ({ name: "a" }));

let s: TestServer;
let victim: Victim;
let attacker: string;
let evilAdmin: string;

beforeAll(async () => {
  s = await startTestServer();
  victim = await startVictim(s);
  attacker = await attackerToken(s);
  evilAdmin = await attackerAdmin(s);
});

afterAll(async () => {
  await s?.stop();
});

describe("a refused call of 400,000 items", () => {
  it("when a role-less caller sends ProjectSecrets of 400,000 items, then each is INVALID_ARGUMENT and ONE audit event; the victim's calls meanwhile succeed and are all audited", async () => {
    const before = await victim.calls("before");
    const [codes, during] = await Promise.all([
      Promise.all([0, 1, 2].map((i) => codeOf(s.call("projectSecrets", { mesh: "m", items }, attacker, withRequestId(`flood-${i}`))))),
      Promise.all([0, 1, 2].map((i) => victim.calls(`during-${i}`))),
    ]);
    expect(codes).toEqual([status.INVALID_ARGUMENT, status.INVALID_ARGUMENT, status.INVALID_ARGUMENT]);
    const after = await victim.calls("after");
    await victim.expectAudited([...before, ...during.flat(), ...after]);
    for (const i of [0, 1, 2]) {
      const events = await eventsOf(s, evilAdmin, `flood-${i}`);
      expect(events.map((e) => [e.method, e.code])).toEqual([["ProjectSecrets", "INVALID_ARGUMENT"]]);
    }
    expect(s.app.audit.dropped).toBe(0);
  });

  it("when the request is refused on the wire, then the error names items and the limit", async () => {
    const err = await s.call("projectSecrets", { mesh: "m", items }, attacker).catch((e: ServiceError) => e);
    expect((err as ServiceError).details).toMatch(/items.*at most 8192 entries/);
  });

  it("when a ProjectSecrets holds 1,000 items (decoded, past the 256 a projection may hold), then it is ONE event whose keys are the counts", async () => {
    const many = Array.from({ length: 1000 }, () => ({ name: "a", keys: [{ key: "k" }] }));
    expect(await codeOf(s.call("projectSecrets", { mesh: "m", items: many }, attacker, withRequestId("many")))).toBe(status.INVALID_ARGUMENT);
    const events = await eventsOf(s, evilAdmin, "many");
    expect(events.map((e) => [e.code, e.name, e.keys])).toEqual([["INVALID_ARGUMENT", "", ["items: 1000", "mappings: 1000"]]]);
  });

  it("when the same request comes as a WatchProjection, then it ends INVALID_ARGUMENT with ONE audit event", async () => {
    const call = s.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: "m", items }), withRequestId("flood-watch", attacker));
    const err = await new Promise<ServiceError>((resolve) => call.on("error", resolve));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const events = await eventsOf(s, evilAdmin, "flood-watch");
    expect(events.map((e) => [e.method, e.code])).toEqual([["WatchProjection", "INVALID_ARGUMENT"]]);
    await victim.expectAudited(await victim.calls("after-watch"));
  });

  it("when a refused projection names several secrets within the limits, then it is still one event (the counts), not one per item", async () => {
    const several = Array.from({ length: 200 }, (_, i) => ({ name: `s${i % 50}` }));
    expect(await codeOf(s.call("projectSecrets", { mesh: "m", items: several }, attacker, withRequestId("several")))).toBe(status.NOT_FOUND);
    const events = await eventsOf(s, evilAdmin, "several");
    expect(events.map((e) => [e.code, e.name, e.keys])).toEqual([["NOT_FOUND", "", ["items: 200", "mappings: 0", "secrets: 50"]]]);
  });
});
