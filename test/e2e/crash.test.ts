/**
 * The short form of `npm run crash-test`: the `secretd` binary killed with SIGKILL under
 * concurrent CreateSecret/UpdateSecret load, restarted, and checked (see the script).
 */
import { describe, expect, it } from "vitest";
import { runCrashTest } from "../../scripts/crash-test.mjs";

describe("crash safety", () => {
  it("when the server is SIGKILLed under write load and restarted, then no acknowledged write is lost, none is half-present, and the file is intact", { timeout: 120_000 }, async () => {
    const r = await runCrashTest({ rounds: 3, workers: 6, minRunMs: 300, maxRunMs: 1200 });
    expect(r.problems).toEqual([]);
    expect(r.rounds).toBe(3);
    expect(r.acknowledged.total).toBeGreaterThan(0);
    expect(r.lost).toBe(0);
    expect(r.halfPresent).toBe(0);
    expect(r.integrity).toBe("ok");
    expect(r.errorsBeforeKill).toBe(0);
  });

  it("when `serve --workers 2` (primary and both workers) is SIGKILLed under write load through both workers, then no acknowledged write is lost either", { timeout: 120_000 }, async () => {
    const r = await runCrashTest({ rounds: 3, workers: 6, minRunMs: 300, maxRunMs: 1200, serverWorkers: 2 });
    expect(r.problems).toEqual([]);
    expect(r.rounds).toBe(3);
    expect(r.acknowledged.total).toBeGreaterThan(0);
    expect(r.lost).toBe(0);
    expect(r.halfPresent).toBe(0);
    expect(r.integrity).toBe("ok");
    expect(r.errorsBeforeKill).toBe(0);
  });
});
