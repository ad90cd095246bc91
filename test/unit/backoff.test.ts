import { describe, expect, it } from "vitest";
import { Backoff } from "../../src/sidecar/backoff.js";

describe("reconnect backoff", () => {
  it("when failures repeat, then the ceiling doubles up to the 30 s cap and the wait is jittered within its upper half", () => {
    const top = new Backoff({ random: () => 0.999999 });
    const bottom = new Backoff({ random: () => 0 });
    const highs = Array.from({ length: 10 }, () => top.next());
    const lows = Array.from({ length: 10 }, () => bottom.next());
    expect(highs).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]);
    expect(lows).toEqual([250, 500, 1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000]);
  });

  it("when jitter is random, then two sidecars rarely wait the same time", () => {
    const waits = new Set(Array.from({ length: 50 }, () => new Backoff().next()));
    expect(waits.size).toBeGreaterThan(10);
  });

  it("when a lower cap is given or reset is called, then the waits follow it", () => {
    const b = new Backoff({ maxMs: 1000, random: () => 0.999999 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([500, 1000, 1000, 1000]);
    b.reset();
    expect(b.next()).toBe(500);
  });
});
