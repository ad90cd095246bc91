/**
 * #27 item 3: known_revision had no length check and the hub kept the whole request for
 * the watch's life: 1,000 role-less watches with a 1.9 MB known_revision took RSS
 * 96 -> 2,046 MiB. A revision is empty or 64 lower-case hex characters (what the server
 * sends); anything else is refused before a watch is kept. And the requests a tenant's
 * open watches keep are bounded in bytes (MAX_WATCH_BYTES_PER_TENANT), not only in count.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProjectSecretsRequest, type Projection, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, attackerToken, eventsOf, startVictim, until, VICTIM_MESH, withRequestId, type Victim } from "./harness.js";
import { openWatch } from "../helpers/watch.js";

const WATCHES = 20;
const HUGE = "f".repeat(1_900_000);

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

/** The first thing a watch sends: "message", or the code it ended with. */
function watchOutcome(knownRevision: string, rid: string): Promise<number | "message"> {
  // An optional item of a secret that does not exist: a watch the attacker may hold.
  const req = ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "nothing", optional: true }], knownRevision });
  const call = s.client.watchProjection(req, withRequestId(rid, attacker));
  return new Promise((resolve) => {
    call.on("data", () => {
      resolve("message");
      call.cancel();
    });
    call.on("error", (e: ServiceError) => resolve(e.code));
  });
}

describe("watch request size", () => {
  it("when a role-less caller opens watches with a 1.9 MB known_revision, then each is INVALID_ARGUMENT with one audit event, none is kept, and the victim's watch and calls go on", async () => {
    const v = openWatch(s.client, { mesh: VICTIM_MESH, items: [{ name: "db" }] }, victim.token);
    const first = await v.next();
    const held = s.app.watches.openWatches;
    // In batches of 10 (19 MB), under the 32 MiB a connection may have buffered: past it the
    // resource ledger resets streams before authentication (test/isolation/slow-bodies.test.ts).
    const outcomes: Array<number | "message"> = [];
    for (let b = 0; b < WATCHES; b += 10) {
      outcomes.push(...(await Promise.all(Array.from({ length: 10 }, (_, i) => watchOutcome(HUGE, `huge-${b + i}`)))));
    }
    expect(outcomes).toEqual(Array(WATCHES).fill(status.INVALID_ARGUMENT));
    expect(s.app.watches.openWatches).toBe(held);

    const rids = await victim.calls("after");
    // The victim's watch still hears of a change to its secret.
    const cur = await s.call<Secret>("getSecret", { mesh: VICTIM_MESH, name: "db" }, victim.token);
    await s.call("updateSecret", { mesh: VICTIM_MESH, name: "db", etag: cur.etag, data: { ...cur.data, extra: Buffer.from("x") } }, victim.token);
    expect((await v.next()).revision).not.toBe(first.revision);
    await victim.calls("after");
    await victim.expectAudited(rids);
    for (let i = 0; i < WATCHES; i++) {
      expect((await eventsOf(s, evilAdmin, `huge-${i}`)).map((e) => [e.method, e.code])).toEqual([["WatchProjection", "INVALID_ARGUMENT"]]);
    }
    expect(first.revision).toMatch(/^[0-9a-f]{64}$/);
    v.cancel();
  });

  it("when a role-less caller keeps opening watches of ~1 MiB requests, then past its tenant's watch bytes they are RESOURCE_EXHAUSTED (not at the 10,000-watch count), and the victim's watch opens", async () => {
    // Optional items of missing secrets, with 4,096 long paths: each kept watch would hold ~2.5 MB.
    const keys = Array.from({ length: 4096 }, (_, i) => ({ key: `k${i}`, path: `${"d".repeat(240)}/${i}` }));
    const req = ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "nothing", optional: true, keys }] });
    const open: Array<{ cancel(): void }> = [];
    let refused: ServiceError | undefined;
    try {
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const call = s.client.watchProjection(req, withRequestId(`big-${i}`, attacker));
        const first = await new Promise<"message" | ServiceError>((resolve) => {
          call.on("data", () => resolve("message"));
          call.on("error", (e: ServiceError) => resolve(e));
        });
        if (first === "message") open.push(call);
        else refused = first;
      }
      expect(refused?.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(refused?.details).toContain("bytes of requests");
      expect(open.length).toBeGreaterThan(5);
      expect(open.length).toBeLessThan(100);
      expect(s.app.watches.openWatches).toBeGreaterThanOrEqual(open.length);
      // Another tenant is not refused for it.
      const v = openWatch(s.client, { mesh: VICTIM_MESH, items: [{ name: "db" }] }, victim.token);
      expect((await v.next()).values.length).toBeGreaterThan(0);
      v.cancel();
      // Closing a watch gives its bytes back.
      const before = s.app.watches.openWatches;
      open.pop()!.cancel();
      await until(() => s.app.watches.openWatches < before, "the closed watch forgotten");
      const again = openWatch(s.client, { mesh: "m", items: [{ name: "nothing", optional: true, keys }] }, attacker);
      await again.next();
      open.push(again);
    } finally {
      for (const c of open) c.cancel();
    }
  });

  it("when known_revision is not 64 lower-case hex characters, then it is INVALID_ARGUMENT naming known_revision; a well-formed one opens the watch", async () => {
    for (const bad of ["f".repeat(63), "f".repeat(65), "F".repeat(64), "z".repeat(64)]) expect(await watchOutcome(bad, "bad")).toBe(status.INVALID_ARGUMENT);
    const call = s.client.watchProjection(
      ProjectSecretsRequest.fromPartial({ mesh: "m", items: [{ name: "nothing", optional: true }], knownRevision: "x" }),
      withRequestId("named", attacker),
    );
    const err = await new Promise<ServiceError>((resolve) => call.on("error", resolve));
    expect(err.details).toContain("known_revision");
    expect(await watchOutcome("0".repeat(64), "fine")).toBe("message");
    expect(await codeOf(s.call("projectSecrets", { mesh: "m", items: [{ name: "nothing", optional: true }], knownRevision: HUGE }, attacker))).toBe(status.INVALID_ARGUMENT);
    const p = await s.call<Projection>("projectSecrets", { mesh: "m", items: [{ name: "nothing", optional: true }], knownRevision: "0".repeat(64) }, attacker);
    expect(p.values).toEqual([]);
  });
});
