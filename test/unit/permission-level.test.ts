import { describe, expect, it } from "vitest";
import { Level } from "../../src/domain/access.js";
import { Permission } from "../../src/gen/secrets/v1/secrets.js";
import { levelOf, permissionOf } from "../../src/transport/grpc/convert.js";

describe("wire Permission ↔ domain Level (transport/grpc/convert.ts)", () => {
  it("when a permission is mapped to a Level and back, then it is the same permission", () => {
    for (const p of [Permission.PERMISSION_READ, Permission.PERMISSION_PROJECT, Permission.PERMISSION_WRITE, Permission.PERMISSION_ADMIN]) {
      expect(permissionOf(levelOf(p) as Level)).toBe(p);
    }
  });

  it("when the wire permissions are mapped, then they follow the domain's one ordering PROJECT < READ < WRITE < ADMIN", () => {
    expect(levelOf(Permission.PERMISSION_PROJECT)).toBe(Level.PROJECT);
    expect(levelOf(Permission.PERMISSION_READ)).toBe(Level.READ);
    expect(levelOf(Permission.PERMISSION_WRITE)).toBe(Level.WRITE);
    expect(levelOf(Permission.PERMISSION_ADMIN)).toBe(Level.ADMIN);
  });

  it("when the permission is unspecified, then it is NONE; when it names no permission, then undefined", () => {
    expect(levelOf(Permission.PERMISSION_UNSPECIFIED)).toBe(Level.NONE);
    expect(levelOf(99 as Permission)).toBeUndefined();
    expect(levelOf(Permission.UNRECOGNIZED)).toBeUndefined();
  });
});
