import { describe, expect, it } from "vitest";
import { newUid } from "../../src/domain/uid.js";

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("secret uids", () => {
  it("when uids are made, then each is a UUID version 7 carrying the millisecond it was made in", () => {
    const now = Date.UTC(2026, 10, 23, 12, 0, 0, 123);
    const uid = newUid(now);
    expect(uid).toMatch(V7);
    expect(parseInt(uid.replace(/-/g, "").slice(0, 12), 16)).toBe(now);
  });

  it("when uids are made at later times, then they sort later; within one millisecond they are all distinct", () => {
    const t = Date.now();
    expect(newUid(t) < newUid(t + 1)).toBe(true);
    expect(newUid(t + 1) < newUid(t + 1000 * 3600 * 24 * 365)).toBe(true);
    const same = new Set(Array.from({ length: 10_000 }, () => newUid(t)));
    expect(same.size).toBe(10_000);
  });
});
