import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { framedText } from "../../src/crypto/framed-text.js";
import { Keyring, type Kek } from "../../src/crypto/keyring.js";
import { macKekId, rowMac, verifyRowMac } from "../../src/crypto/row-mac.js";
import { SecretdError } from "../../src/errors.js";

const kek = (id: string): Kek => ({ id, key: randomBytes(32), created: "2026-01-01T00:00:00Z" });

function dataLoss(fn: () => void): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    return err instanceof SecretdError && err.code === "DATA_LOSS" && err.message === "stored secret data failed to authenticate";
  }
}

describe("framed text", () => {
  it("when characters move between parts, then the text differs", () => {
    expect(framedText(["ab", "c"])).not.toBe(framedText(["a", "bc"]));
    expect(framedText(["1:a", ""])).not.toBe(framedText(["", "1:a"]));
    expect(framedText([12, "3"])).not.toBe(framedText([1, "23"]));
    expect(framedText(["é", "x"])).toBe("1:é1:x");
  });
});

describe("row MACs", () => {
  const old = kek("k-old");
  const next = kek("k-new");
  const before = new Keyring([old], old.id);
  const after = new Keyring([old, next], next.id);

  it("when a MAC was made under an older KEK, then it checks under any keyring holding that KEK, and names it", () => {
    const mac = rowMac(old, "row");
    expect(macKekId(mac)).toBe("k-old");
    expect(dataLoss(() => verifyRowMac(before, mac, "row", "t"))).toBe(false);
    expect(dataLoss(() => verifyRowMac(after, mac, "row", "t"))).toBe(false);
    expect(dataLoss(() => verifyRowMac(new Keyring([next], next.id), mac, "row", "t"))).toBe(true);
  });

  it("when the text, a tag byte, the KEK id or the length changes, or the MAC is missing, then DATA_LOSS, also after a good check was memoised", () => {
    const mac = rowMac(old, "row");
    verifyRowMac(before, mac, "row", "t"); // memoised now
    expect(dataLoss(() => verifyRowMac(before, mac, "rox", "t"))).toBe(true);
    const flipped = Buffer.from(mac);
    flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 1;
    expect(dataLoss(() => verifyRowMac(before, flipped, "row", "t"))).toBe(true);
    const otherId = Buffer.from(mac);
    otherId[2] = otherId[2]! ^ 1;
    expect(dataLoss(() => verifyRowMac(before, otherId, "row", "t"))).toBe(true);
    expect(dataLoss(() => verifyRowMac(before, mac.subarray(0, mac.length - 1), "row", "t"))).toBe(true);
    expect(dataLoss(() => verifyRowMac(before, undefined, "row", "t"))).toBe(true);
    expect(dataLoss(() => verifyRowMac(before, mac, "row", "t"))).toBe(false);
  });

  it("when two KEKs MAC the same text, then the MACs differ (the key is derived per KEK)", () => {
    expect(rowMac(old, "row").subarray(-32).equals(rowMac(next, "row").subarray(-32))).toBe(false);
  });
});
