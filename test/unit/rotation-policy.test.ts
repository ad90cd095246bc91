import { describe, expect, it } from "vitest";
import { accessTo, Level } from "../../src/domain/access.js";
import { isServerAnnotation, parseGoDuration, parsePolicy, withRotationNext } from "../../src/domain/rotation-policy.js";
import { backoffMs, schedulerPrincipal } from "../../src/domain/rotation-scheduler.js";
import type { SecretRow } from "../../src/storage/storage.js";

describe("rotation policy", () => {
  it("when durations are Go-style, then they parse to ms; anything else is undefined", () => {
    expect(parseGoDuration("1h30m")).toBe(5_400_000);
    expect(parseGoDuration("720h")).toBe(720 * 3_600_000);
    expect(parseGoDuration("90s")).toBe(90_000);
    for (const bad of ["", "1d", "h", "1h ", "-1h", "1.5h"]) expect(parseGoDuration(bad)).toBeUndefined();
  });

  it("when a policy is given, then rotation-next is base + period; without one it is removed; only the policy keys are the caller's", () => {
    const p = { "secretd.io/rotation-period": "1h", "secretd.io/rotation-generate": "pw:32,token:64" };
    expect(parsePolicy(p)).toMatchObject({ periodMs: 3_600_000, generate: [{ key: "pw", length: 32 }, { key: "token", length: 64 }], rotator: "", retire: 0 });
    expect(withRotationNext(p, 0)["secretd.io/rotation-next"]).toBe("1970-01-01T01:00:00.000Z");
    expect(withRotationNext({ a: "b", "secretd.io/rotation-next": "x" }, 0)).toEqual({ a: "b" });
    expect(isServerAnnotation("secretd.io/rotation-next")).toBe(true);
    expect(isServerAnnotation("secretd.io/not-after")).toBe(true);
    expect(isServerAnnotation("secretd.io/rotation-period")).toBe(false);
  });

  it("when the rotator is postgres, then the policy needs no values to generate, and may not generate username or password (the rotator makes them)", () => {
    const p = { "secretd.io/rotation-period": "720h", "secretd.io/rotation-rotator": "postgres" };
    expect(parsePolicy(p)).toMatchObject({ periodMs: 720 * 3_600_000, generate: [], rotator: "postgres" });
    expect(parsePolicy({ ...p, "secretd.io/rotation-generate": "apikey:40" })?.generate).toEqual([{ key: "apikey", length: 40, alphabet: "" }]);
    for (const key of ["password", "username"]) {
      expect(() => parsePolicy({ ...p, "secretd.io/rotation-generate": `${key}:32` })).toThrow(/rotation-generate.*must not name "(password|username)": the postgres rotator makes username and password itself/);
    }
    // Any other rotator still needs rotation-generate.
    expect(() => parsePolicy({ "secretd.io/rotation-period": "1h", "secretd.io/rotation-rotator": "exec" })).toThrow(/rotation-generate.*is required/);
  });

  it("when failures pile up, then the backoff doubles from 1m and stops at the period", () => {
    expect([1, 2, 3].map((n) => backoffMs(n, 3_600_000))).toEqual([60_000, 120_000, 240_000]);
    expect(backoffMs(30, 3_600_000)).toBe(3_600_000);
  });

  it("when the scheduler's principal meets a secret, then it holds WRITE on its one secret and nothing on any other", () => {
    const row = (uid: string): SecretRow => ({ uid, tenant: "t", mesh: "m", name: "n", owner: "o" }) as SecretRow;
    const p = schedulerPrincipal({ uid: "u1", tenant: "t", mesh: "m", name: "n", etag: "e", annotations: {}, due: "" });
    expect(accessTo(p, row("u1"), [], 0).level).toBe(Level.WRITE);
    expect(accessTo(p, row("u2"), [], 0).level).toBe(Level.NONE);
    expect(accessTo(p, { ...row("u1"), tenant: "other" }, [], 0).level).toBe(Level.NONE);
  });
});
