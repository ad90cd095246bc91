import { describe, expect, it } from "vitest";
import { rateLimited } from "../../src/rate-limited.js";

describe("rateLimited", () => {
  it("when a line fires 4 times a second, then the first is logged at once and then one per interval with the count suppressed", () => {
    let t = 0;
    const lines: [number, string][] = [];
    const log = rateLimited(30_000, (suppressed, msg: string) => lines.push([suppressed, msg]), () => t);
    for (; t < 65_000; t += 250) log(`at ${t}`);
    expect(lines).toEqual([
      [0, "at 0"],
      [119, "at 30000"],
      [119, "at 60000"],
    ]);
  });
});
