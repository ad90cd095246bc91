import { describe, expect, it } from "vitest";
import { defaultEnvName } from "../../src/domain/env-names.js";
import { projectionRevision } from "../../src/domain/projection.js";
import { decodePageToken, encodePageToken } from "../../src/domain/page-token.js";

describe("projection defaults", () => {
  it("when a key has characters outside [A-Z0-9_], then the env name upper-cases it and turns them into _", () => {
    expect(defaultEnvName("", "db.pass-word")).toBe("DB_PASS_WORD");
    expect(defaultEnvName("APP_", "tls.crt")).toBe("APP_TLS_CRT");
    expect(defaultEnvName("", "ünïcode")).toBe("_N_CODE");
  });

  it("when the same sources and values are hashed, then the revision is the same; any change changes it", () => {
    const src = [{ mesh: "m", name: "a", version: 1 }];
    const val = [{ secret: "a", key: "k", env: "K", path: "a/k", mode: 0o400, value: Buffer.from("v") }];
    const r = projectionRevision(src, val);
    expect(projectionRevision(src, val)).toBe(r);
    expect(projectionRevision([{ ...src[0]!, version: 2 }], val)).not.toBe(r);
    expect(projectionRevision(src, [{ ...val[0]!, value: Buffer.from("w") }])).not.toBe(r);
    expect(projectionRevision(src, [{ ...val[0]!, mode: 0o440 }])).not.toBe(r);
    // Length prefixes keep field boundaries: moving a byte between fields changes it.
    expect(projectionRevision(src, [{ ...val[0]!, env: "KA", path: "/k" }])).not.toBe(projectionRevision(src, [{ ...val[0]!, env: "K", path: "a/k" }]));
  });
});

describe("page tokens", () => {
  it("when a token is decoded with its own query, then the position comes back; with another query it is refused", () => {
    const t = encodePageToken("name-5", ["m", "", "a=b"]);
    expect(decodePageToken(t, ["m", "", "a=b"])).toEqual({ after: "name-5" });
    expect(() => decodePageToken(t, ["m", "", "a=c"])).toThrow("page_token");
    expect(() => decodePageToken("%%%", ["m"])).toThrow("page_token");
    expect(decodePageToken("", ["x"])).toEqual({ after: "" });
  });
});
