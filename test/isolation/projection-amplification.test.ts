/**
 * #27 item 4: a small ProjectSecrets over secrets with many keys expanded to hundreds of
 * thousands of values (hashed, audited once per source, encoded) before being refused as
 * too large. The count of values after expansion is bounded (MAX_PROJECTED_VALUES) and
 * checked on each row as it is read, before that work and before the next row is read;
 * a projection or watch past it is RESOURCE_EXHAUSTED, one audit event, and the victim
 * is served all along.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MAX_PROJECTED_VALUES } from "../../src/domain/projection-bounds.js";
import { ProjectSecretsRequest, type Projection } from "../../src/gen/secrets/v1/secrets.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, attackerToken, eventsOf, startVictim, withRequestId, type Victim } from "./harness.js";

const M = "amp";
const SECRETS = 8;
const KEYS = 4096;

let s: TestServer;
let victim: Victim;
let attacker: string;
let evilAdmin: string;

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}

beforeAll(async () => {
  s = await startTestServer();
  victim = await startVictim(s);
  attacker = await attackerToken(s, ["data-developer"]);
  evilAdmin = await attackerAdmin(s);
  // The attacker's own secrets, each of 4,096 empty keys: a few KiB of data apiece.
  const empty = Object.fromEntries(Array.from({ length: KEYS }, (_, i) => [`k${i}`, ""]));
  for (let i = 0; i < SECRETS; i++) await s.call("createSecret", { mesh: M, name: `wide-${i}`, stringData: empty }, attacker);
});

afterAll(async () => {
  await s?.stop();
});

/** Items without keys over every wide secret, each with its own env prefix. */
const wide = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `wide-${i % SECRETS}`, envPrefix: `P${i}_` }));

describe("projection amplification", () => {
  it("when items without keys would expand past the cap, then ProjectSecrets is RESOURCE_EXHAUSTED, one audit event; the victim is served and audited", async () => {
    const before = await victim.calls("before");
    const err = await failure(s.call("projectSecrets", { mesh: M, items: wide(SECRETS) }, attacker, withRequestId("amp-8")));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toContain(`more than ${MAX_PROJECTED_VALUES} values`);
    // The shape: 180 items over secrets of 4,096 keys (737,280 values once expanded).
    const [shape, during] = await Promise.all([
      failure(s.call("projectSecrets", { mesh: M, items: wide(180) }, attacker, withRequestId("amp-180"))),
      victim.calls("during"),
    ]);
    expect(shape.code).toBe(status.RESOURCE_EXHAUSTED);
    const after = await victim.calls("after");
    await victim.expectAudited([...before, ...during, ...after]);
    for (const rid of ["amp-8", "amp-180"]) {
      const events = await eventsOf(s, evilAdmin, rid);
      expect(events.map((e) => [e.method, e.code])).toEqual([["ProjectSecrets", "RESOURCE_EXHAUSTED"]]);
    }
  });

  it("when items without keys pass the cap on the first secret read, then the other sources are not read at all", async () => {
    // The victim waited on this (bench:isolation, projection_amplification at +100 ms): each refused
    // call read, parsed and MAC-checked all 8 rows of 4,096 keys (too big for the read cache) first.
    const storage = s.app.storage;
    const inner = storage.readSecrets.bind(storage);
    let read = 0;
    const spy = vi.spyOn(storage, "readSecrets").mockImplementation(async (scope, names, onRow) => {
      if (scope.tenant !== "evil") return inner(scope, names, onRow);
      return inner(scope, names, (name, row) => {
        read++;
        onRow?.(name, row);
      });
    });
    try {
      const err = await failure(s.call("projectSecrets", { mesh: M, items: wide(180) }, attacker));
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(read).toBe(1); // wide-0, named by 23 of the items: 94,208 values
    } finally {
      spy.mockRestore();
    }
  });

  it("when a WatchProjection would expand past the cap, then it ends RESOURCE_EXHAUSTED and no watch is kept", async () => {
    const held = s.app.watches.openWatches;
    const call = s.client.watchProjection(ProjectSecretsRequest.fromPartial({ mesh: M, items: wide(SECRETS) }), withRequestId("amp-watch", attacker));
    const outcome = await new Promise<number | "message">((resolve) => {
      call.on("data", () => resolve("message"));
      call.on("error", (e: ServiceError) => resolve(e.code));
    });
    call.cancel();
    expect(outcome).toBe(status.RESOURCE_EXHAUSTED);
    expect(s.app.watches.openWatches).toBe(held);
    expect((await eventsOf(s, evilAdmin, "amp-watch")).map((e) => e.code)).toEqual(["RESOURCE_EXHAUSTED"]);
    await victim.expectAudited(await victim.calls("after-watch"));
  });

  it("when a projection holds exactly the cap (one secret's every key), then it is served", async () => {
    const p = await s.call<Projection>("projectSecrets", { mesh: M, items: [{ name: "wide-0" }] }, attacker, withRequestId("amp-one"));
    expect(p.values).toHaveLength(MAX_PROJECTED_VALUES);
    const events = await eventsOf(s, evilAdmin, "amp-one");
    expect(events.map((e) => [e.code, e.name, e.keys.length])).toEqual([["OK", "wide-0", 256]]); // keys clipped to 256 per event
  });
});
