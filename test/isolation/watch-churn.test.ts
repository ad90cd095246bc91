/**
 * #27 item 5 and its teardown: a tenant's watches of many sources cost one lease row each
 * plus their sources, written once; renewal is one heartbeat write; and dropping them all
 * at once is a burst of lease deletes that the group commit takes in slices
 * (group-commit.ts), not one long transaction. The attacker (a data-developer) opens 200
 * watches of 64 sources (12,800 source rows), then drops them all by
 * closing its connections, twice; the victim's calls succeed throughout, its audit events
 * are all there, and the attacker's leases are exactly those open.
 */
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectSecretsRequest, type ListConsumersResponse } from "../../src/gen/secrets/v1/secrets.js";
import { grpcFrame } from "../security/raw-http2.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, attackerToken, connect, h2Request, S, startVictim, until, type Victim } from "./harness.js";

const WATCHES = 200;
const SOURCES = 64;
const MESH = "churn";

let s: TestServer;
let victim: Victim;
let attacker: string;
let evilAdmin: string;

beforeAll(async () => {
  s = await startTestServer();
  victim = await startVictim(s);
  attacker = await attackerToken(s, ["data-developer"]);
  evilAdmin = await attackerAdmin(s);
  for (let i = 0; i < SOURCES; i++) await s.call("createSecret", { mesh: MESH, name: `w-${i}`, stringData: { [`k${i}`]: `v${i}` } }, attacker);
}, 60_000);

afterAll(async () => {
  await s?.stop();
});

async function consumersOf(name: string): Promise<number> {
  return (await s.call<ListConsumersResponse>("listConsumers", { mesh: MESH, name, pageSize: 1000 }, evilAdmin)).consumers.length;
}

/** Opens WATCHES watches of every source over 4 connections; resolves once each sent its first message. */
async function openAll(): Promise<http2.ClientHttp2Session[]> {
  const body = grpcFrame(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: MESH, items: Array.from({ length: SOURCES }, (_, i) => ({ name: `w-${i}` })) })).finish());
  const sessions = Array.from({ length: 4 }, () => connect(s.address));
  let first = 0;
  for (let i = 0; i < WATCHES; i++) {
    const { stream } = h2Request(sessions[i % sessions.length]!, `${S}/WatchProjection`, body, { token: attacker });
    stream.once("data", () => first++);
  }
  await until(() => first === WATCHES, "every attacker watch sent its first message", 60_000);
  return sessions;
}

describe("watch churn", () => {
  it("when a tenant holds 200 watches of 64 sources and drops them all at once, twice, then the victim is served throughout, its events are all audited, and the leases are exact", async () => {
    const base = s.app.watches.openWatches;
    const rids: string[] = [];
    for (let round = 0; round < 2; round++) {
      const sessions = await openAll();
      expect(s.app.watches.openWatches).toBe(base + WATCHES);
      expect(await consumersOf("w-0")).toBe(WATCHES);
      expect(await consumersOf(`w-${SOURCES - 1}`)).toBe(WATCHES);
      rids.push(...(await victim.calls(`held-${round}`)));
      // The teardown, with the victim calling while the server deletes 200 watches' leases.
      for (const x of sessions) x.destroy();
      const during = Promise.all(Array.from({ length: 5 }, (_, i) => victim.calls(`drop-${round}-${i}`)));
      await until(() => s.app.watches.openWatches === base, "every attacker watch closed", 60_000);
      rids.push(...(await during).flat());
      // Leases go with their watches (the deletes may still be committing in slices).
      for (let i = 0; i < 500 && (await consumersOf("w-0")) > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(await consumersOf("w-0")).toBe(0);
      expect(await consumersOf(`w-${SOURCES - 1}`)).toBe(0);
    }
    await victim.served();
    await victim.expectAudited(rids);
  }, 180_000);
});
