/** The pure parts of the CSI provider's Mount: attributes, permission, files and versions. */
import { describe, expect, it } from "vitest";
import { parseAttributes, parsePermission, podOf, TOKENS_ATTRIBUTE } from "../../src/csi/mount-attributes.js";
import { FILES_ID, mountFiles, mountResponse, objectVersions, sameVersions } from "../../src/csi/mount-files.js";
import { SecretdError } from "../../src/errors.js";
import { Projection, ProjectSecretsRequest } from "../../src/gen/secrets/v1/secrets.js";

const TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

function attrs(extra: Record<string, unknown>, tokens: unknown = { secretd: { token: TOKEN, expirationTimestamp: "2030-01-01T00:00:00Z" } }): string {
  return JSON.stringify({ objects: "items: [db]", mesh: "shop", "csi.storage.k8s.io/pod.name": "web-0", [TOKENS_ATTRIBUTE]: JSON.stringify(tokens), ...extra });
}

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SecretdError);
    return (err as SecretdError).message;
  }
  throw new Error("expected a SecretdError");
}

describe("Mount attributes", () => {
  it("when the attributes are as the driver builds them, then the projection, server and the only token are taken", () => {
    const a = parseAttributes(attrs({ serverAddress: "secretd.secretd:50051" }));
    expect(a.projection.mesh).toBe("shop");
    expect(a.projection.items.map((i) => i.name)).toEqual(["db"]);
    expect(a.server?.target).toBe("secretd.secretd:50051");
    expect(a.token).toBe(TOKEN);
  });

  it("when several tokens are given, then `audience` picks one, and without it the Mount is refused naming audience", () => {
    const tokens = { vault: { token: "other.token.x" }, secretd: { token: TOKEN } };
    expect(parseAttributes(attrs({ audience: "secretd" }, tokens)).token).toBe(TOKEN);
    expect(message(() => parseAttributes(attrs({}, tokens)))).toMatch(/^attributes\.audience: is required/);
  });

  it("when an attribute is wrong, then the message names it and never holds the token", () => {
    const bad = [attrs({ objects: "" }), attrs({ objects: "items: [db]\nmesh: x" }), attrs({ serverAddress: "https://x" }), attrs({ audience: "nope" }), attrs({}, { secretd: { token: `${TOKEN} space` } }), "[]", "{"];
    for (const a of bad) {
      const m = message(() => parseAttributes(a));
      expect(m).toMatch(/^attributes/);
      expect(m).not.toContain(TOKEN);
    }
  });

  it("when the pod's fields are read for a log line, then bad attributes give blanks and the token is never among them", () => {
    expect(podOf("{")).toEqual({ name: "", namespace: "", uid: "", serviceAccount: "" });
    expect(JSON.stringify(podOf(attrs({})))).not.toContain(TOKEN);
    expect(podOf(attrs({})).name).toBe("web-0");
  });

  it("when the driver sends its permission, then it is JSON of a decimal mode", () => {
    expect(parsePermission("420")).toBe(0o644);
    expect(parsePermission("")).toBeUndefined();
    for (const p of ["0644", '"420"', "1000", "-1"]) expect(() => parsePermission(p)).toThrow(/^permission/);
  });
});

describe("Mount files and versions", () => {
  const request = ProjectSecretsRequest.fromPartial({ mesh: "shop", items: [{ name: "db", keys: [{ key: "pw", mode: 0o440 }, { key: "user" }] }] });
  const projection = Projection.fromPartial({
    values: [
      { secret: "db", key: "pw", path: "db/pw", mode: 0o440, value: Buffer.from("p") },
      { secret: "db", key: "user", path: "db/user", mode: 0o400, value: Buffer.from("u") },
    ],
    sources: [{ mesh: "shop", name: "db", version: 3 }],
    revision: "ab".repeat(32),
  });

  it("when a mapping sets no mode, then the driver's permission applies; one set mode is kept", () => {
    expect(mountFiles(request, projection, 0o644).map((f) => [f.path, f.mode])).toEqual([
      ["db/pw", 0o440],
      ["db/user", 0o644],
    ]);
    expect(mountFiles(request, projection, undefined).map((f) => f.mode)).toEqual([0o440, 0o400]);
  });

  it("when the files differ only in a mode, then the files version differs; the same answer compares equal", () => {
    const a = objectVersions(projection, mountFiles(request, projection, 0o644));
    const b = objectVersions(projection, mountFiles(request, projection, 0o600));
    expect(a.find((o) => o.id === "shop/db")?.version).toBe("3");
    expect(a.find((o) => o.id === FILES_ID)?.version).not.toBe(b.find((o) => o.id === FILES_ID)?.version);
    expect(sameVersions(a, objectVersions(projection, mountFiles(request, projection, 0o644)))).toBe(true);
    expect(sameVersions(a, b)).toBe(false);
    expect(sameVersions([], a)).toBe(false);
  });

  it("when the encoded answer exceeds 4 MiB, then it is refused RESOURCE_EXHAUSTED", () => {
    const big = [{ path: "a", mode: 0o400, contents: Buffer.alloc(4 * 1024 * 1024) }];
    expect(() => mountResponse([], big)).toThrow(/4 MiB/);
  });
});
