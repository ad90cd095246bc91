/** The delegation bound of access.ts: how far a caller's ADMIN authority reaches, by key and by time. */
import { describe, expect, it } from "vitest";
import { accessTo, adminUntil, grantWithin, holdsWhole, Level } from "../../src/domain/access.js";
import { SecretdError } from "../../src/errors.js";
import type { Principal } from "../../src/domain/principal.js";
import type { GrantRow, SecretRow } from "../../src/storage/storage.js";

const NOW = 1_000_000;
const secret = { uid: "u1", tenant: "acme", owner: "olivia" } as SecretRow;
const who = (sub: string, roles: string[] = []): Principal => ({ sub, tenant: "acme", roles, meshes: undefined, exp: undefined });
const g = (subject: string, level: Level, keys: string[] = [], expireTime?: number): GrantRow => ({
  secretUid: "u1",
  subject,
  level,
  keys,
  expireTime,
  grantedBy: "olivia",
  createTime: 0,
});

function deniedBy(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect((e as SecretdError).code).toBe("PERMISSION_DENIED");
    return (e as SecretdError).message;
  }
  throw new Error("expected PERMISSION_DENIED");
}

describe("adminUntil", () => {
  it("when the caller is the owner or a tenant-admin, then its authority never ends", () => {
    expect(adminUntil(accessTo(who("olivia"), secret, [], NOW), [])).toBeUndefined();
    expect(adminUntil(accessTo(who("boss", ["tenant-admin"]), secret, [], NOW), ["a"])).toBeUndefined();
  });

  it("when ADMIN comes from several grants, then the latest end covering each key counts, and the earliest over the keys", () => {
    const grants = [g("user:adam", Level.ADMIN, ["a"], NOW + 100), g("role:ops", Level.ADMIN, ["a", "b"], NOW + 50), g("user:adam", Level.READ, [], undefined)];
    const access = accessTo(who("adam", ["ops"]), secret, grants, NOW);
    expect(adminUntil(access, ["a"])).toBe(NOW + 100);
    expect(adminUntil(access, ["a", "b"])).toBe(NOW + 50);
    expect(deniedBy(() => adminUntil(access, []))).toContain("list them in keys");
    expect(deniedBy(() => adminUntil(access, ["c"]))).toContain('"c"');
  });

  it("when a grant on every key has no end, then a key-limited grant with an end does not shorten it", () => {
    const access = accessTo(who("adam"), secret, [g("user:adam", Level.ADMIN, [], undefined), g("user:adam", Level.ADMIN, ["a"], NOW + 5)], NOW);
    expect(adminUntil(access, ["a"])).toBeUndefined();
    expect(holdsWhole(access, Level.ADMIN)).toBe(true);
  });

  it("when the ADMIN grant has expired, then it covers nothing", () => {
    const access = accessTo(who("adam"), secret, [g("user:adam", Level.ADMIN, [], NOW - 1)], NOW);
    expect(access.level).toBe(Level.NONE);
    expect(() => adminUntil(access, [])).toThrow(SecretdError);
  });
});

describe("grantWithin", () => {
  it("when the holder is not key-limited, then every grant is within; else only non-empty subsets of its keys", () => {
    expect(grantWithin(undefined, [])).toBe(true);
    const mine = new Set(["a", "b"]);
    expect(grantWithin(mine, ["a"])).toBe(true);
    expect(grantWithin(mine, ["a", "b"])).toBe(true);
    expect(grantWithin(mine, [])).toBe(false);
    expect(grantWithin(mine, ["a", "c"])).toBe(false);
  });
});
