import { expect, it } from "vitest";
import { ManualClock, realClock } from "../../src/clock.js";

it("when a ManualClock is advanced, then it is that far ahead of the real clock at once, and it never moves back", () => {
  const c = new ManualClock();
  const before = realClock.now();
  c.advance(60_000);
  expect(c.now()).toBeGreaterThanOrEqual(before + 60_000);
  expect(c.now()).toBeLessThan(realClock.now() + 60_000 + 1000);
  expect(() => c.advance(-1)).toThrow(RangeError);
  expect(() => c.advance(Number.NaN)).toThrow(RangeError);
});
