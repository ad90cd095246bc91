/**
 * The crash test (scripts/crash-test.mjs) on PostgreSQL: two `secretd serve` replicas on
 * one database take concurrent CreateSecret/UpdateSecret load and are SIGKILLed together,
 * then restarted and checked. PostgreSQL itself stays up: what is tested is that a write
 * is acknowledged only once committed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCrashTest } from "../../scripts/crash-test.mjs";
import { createE2eDatabase, E2E_STORAGE, startPostgres, type PostgresCluster } from "../helpers/postgres.js";

let own: PostgresCluster | undefined;
let url: string;

beforeAll(async () => {
  // The run's shared cluster under test:postgres, else one of its own.
  if (E2E_STORAGE === "postgres") url = await createE2eDatabase();
  else {
    own = await startPostgres();
    url = await own.createDatabase();
  }
}, 60_000);

afterAll(() => own?.stop());

describe("crash safety on PostgreSQL", () => {
  it("when two replicas on one PostgreSQL database are SIGKILLed under write load through both and restarted, then no acknowledged write is lost and none is half-present", { timeout: 180_000 }, async () => {
    const r = await runCrashTest({ rounds: 3, workers: 6, minRunMs: 300, maxRunMs: 1200, databaseUrl: url, replicas: 2 });
    expect(r.problems).toEqual([]);
    expect(r.rounds).toBe(3);
    expect(r.acknowledged.total).toBeGreaterThan(0);
    expect(r.lost).toBe(0);
    expect(r.halfPresent).toBe(0);
    expect(r.errorsBeforeKill).toBe(0);
  });
});
