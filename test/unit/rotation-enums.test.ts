import { describe, expect, it } from "vitest";
import { Retire, RotationState } from "../../src/domain/rotation-enums.js";
import { Retire as WireRetire, RotationState as WireState } from "../../src/gen/secrets/v1/secrets.js";

const members = (e: object): Record<string, number> => Object.fromEntries(Object.entries(e).filter(([, v]) => typeof v === "number" && v >= 0));

describe("rotation enums", () => {
  it("when the domain names a RotationState or Retire value, then it is the generated enum's, name for name", () => {
    expect(RotationState).toEqual(members(WireState));
    expect(Retire).toEqual(members(WireRetire));
  });
});
