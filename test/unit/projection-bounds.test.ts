/**
 * The work bounds of a projection (#27): known_revision's shape, the count of values
 * after expansion (checked on the rows, before any work), and the audit targets of a
 * call, which cost O(targets) and are one for a request past the limits.
 */
import { describe, expect, it } from "vitest";
import { Level } from "../../src/domain/access.js";
import { MAX_ITEMS, MAX_PROJECTED_VALUES, projectedValuesCheck } from "../../src/domain/projection-bounds.js";
import { validateRequest } from "../../src/domain/projection.js";
import type { Principal } from "../../src/domain/principal.js";
import { validateRevision } from "../../src/domain/validation.js";
import { ProjectSecretsRequest, type Projection } from "../../src/gen/secrets/v1/secrets.js";
import type { GrantRow, SecretWithVersion } from "../../src/storage/storage.js";
import { auditProject } from "../../src/transport/grpc/audit-targets.js";

/** The row check as readProjection applies it, over rows given by name. */
function checkProjectedValues(p: Principal, r: ProjectSecretsRequest, byName: ReadonlyMap<string, SecretWithVersion | undefined>, now: number): void {
  const check = projectedValuesCheck(p, r, now);
  for (const [name, row] of byName) check(name, row);
}

const owner: Principal = { sub: "olga", tenant: "t", roles: [], meshes: undefined, exp: undefined };
const reader: Principal = { sub: "rita", tenant: "t", roles: [], meshes: undefined, exp: undefined };
const stranger: Principal = { sub: "sam", tenant: "t", roles: [], meshes: undefined, exp: undefined };

function keys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `k${i}`);
}

function row(name: string, dataKeys: readonly string[], grants: GrantRow[] = []): SecretWithVersion {
  const uid = `uid-${name}`;
  return {
    secret: {
      uid, tenant: "t", mesh: "", name, type: "Opaque", description: "", owner: "olga", labels: {}, annotations: {},
      immutable: false, version: 1, etag: "e", keys: dataKeys, createTime: 0, updateTime: 0, expireTime: undefined,
    },
    version: { uid, version: 1, keys: dataKeys, dek: new Uint8Array(), payload: new Uint8Array(), createTime: 0 },
    grants,
    latestVersion: 1,
  };
}

const grant = (name: string, sub: string, grantKeys: string[] = []): GrantRow => ({
  secretUid: `uid-${name}`, subject: `user:${sub}`, level: Level.PROJECT, keys: grantKeys, expireTime: undefined, grantedBy: "olga", createTime: 0,
});

const req = (items: object[], knownRevision = "") => ProjectSecretsRequest.fromPartial({ mesh: "", items, knownRevision });

describe("known_revision", () => {
  it("when it is empty or 64 lower-case hex characters, then it is accepted; anything else is INVALID_ARGUMENT naming known_revision", () => {
    expect(() => validateRevision("", "known_revision")).not.toThrow();
    expect(() => validateRevision("a".repeat(64), "known_revision")).not.toThrow();
    for (const bad of ["a".repeat(63), "a".repeat(65), "A".repeat(64), "g".repeat(64), "a".repeat(1_900_000)]) {
      expect(() => validateRevision(bad, "known_revision")).toThrow(/known_revision/);
    }
  });

  it("when a request carries a bad known_revision, then the request check refuses it before anything is read", () => {
    expect(() => validateRequest(req([{ name: "a" }], "x".repeat(1000)))).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => validateRequest(req([{ name: "a" }], "0".repeat(64)))).not.toThrow();
  });
});

describe("checkProjectedValues", () => {
  it("when items without keys over secrets of 4,096 keys would expand past the cap, then it is RESOURCE_EXHAUSTED before any value is opened", () => {
    const names = Array.from({ length: 180 }, (_, i) => `s${i}`);
    const byName = new Map(names.map((n) => [n, row(n, keys(4096))]));
    const r = req(names.map((name) => ({ name })));
    expect(() => checkProjectedValues(owner, r, byName, 0)).toThrow(expect.objectContaining({ code: "RESOURCE_EXHAUSTED" }));
  });

  it("when one secret's every key is projected, then the cap is met exactly and it passes; one more value is refused", () => {
    const byName = new Map([["a", row("a", keys(MAX_PROJECTED_VALUES))], ["b", row("b", ["x"])]]);
    expect(() => checkProjectedValues(owner, req([{ name: "a" }]), byName, 0)).not.toThrow();
    expect(() => checkProjectedValues(owner, req([{ name: "a" }, { name: "b", keys: [{ key: "x" }] }]), byName, 0)).toThrow(/more than 4096 values/);
  });

  it("when the same secret is named by several items without keys, then each item counts all its keys", () => {
    const byName = new Map([["a", row("a", keys(2049))]]);
    expect(() => checkProjectedValues(owner, req([{ name: "a", envPrefix: "X_" }, { name: "a", envPrefix: "Y_" }]), byName, 0)).toThrow(/values/);
  });

  it("when a grant limits the keys, then only the granted keys count", () => {
    const byName = new Map([["a", row("a", keys(4096), [grant("a", "rita", ["k1", "k2"])])]]);
    const twice = req(Array.from({ length: 100 }, (_, i) => ({ name: "a", envPrefix: `P${i}_` })));
    expect(() => checkProjectedValues(reader, twice, byName, 0)).not.toThrow(); // 100 × 2 values
  });

  it("when the caller cannot see a secret, or it is missing, then it is not expanded (the projection refuses it with its own code)", () => {
    const byName = new Map<string, SecretWithVersion | undefined>([["a", row("a", keys(4096))], ["gone", undefined]]);
    const r = req([{ name: "a" }, { name: "a", envPrefix: "B_" }, { name: "gone", optional: true }]);
    expect(() => checkProjectedValues(stranger, r, byName, 0)).not.toThrow();
    expect(() => checkProjectedValues(owner, r, byName, 0)).toThrow(/values/);
  });
});

describe("auditProject", () => {
  it("when a refused request holds 400,000 items, then it has ONE target, with the counts", () => {
    const items = Array.from({ length: 400_000 }, () => ({ name: "a", keys: [], optional: false, envPrefix: "", stage: "" }));
    const targets = auditProject({ mesh: "m", items, knownRevision: "" } as ProjectSecretsRequest, undefined);
    expect(targets).toEqual([{ mesh: "m", name: "", version: 0, keys: ["items: 400000", "mappings: 0"] }]);
  });

  it("when a refused request names several secrets, then it is still ONE target, with the counts; about one secret, it names it and its keys", () => {
    const several = req([{ name: "a", keys: [{ key: "y" }] }, { name: "a" }, { name: "b", keys: [{ key: "x" }] }]);
    expect(auditProject(several, undefined)).toEqual([{ mesh: "", name: "", version: 0, keys: ["items: 3", "mappings: 2", "secrets: 2"] }]);
    const one = req([{ name: "a", keys: [{ key: "y" }] }, { name: "a", keys: [{ key: "x" }, { key: "y" }] }]);
    expect(auditProject(one, undefined)).toEqual([{ mesh: "", name: "a", version: 0, keys: ["x", "y"], stage: "" }]);
    // The stage asked for, when every item asks the same one.
    const previous = req([{ name: "a", stage: "previous" }]);
    expect(auditProject(previous, undefined)).toMatchObject([{ name: "a", stage: "previous" }]);
    expect(auditProject(req([{ name: "a", stage: "previous" }, { name: "a" }]), undefined)).toMatchObject([{ name: "a", stage: "" }]);
    expect(auditProject(req(Array.from({ length: MAX_ITEMS }, (_, i) => ({ name: `s${i}` }))), undefined)).toHaveLength(1);
  });

  it("when a projection was answered, then there is one target per source with the keys projected from it", () => {
    const value = (secret: string, key: string) => ({ secret, key, env: `${secret}_${key}`, path: `${secret}/${key}`, mode: 0o400, value: Buffer.alloc(0) });
    const res: Projection = {
      sources: [{ mesh: "m", name: "a", version: 3 }, { mesh: "m", name: "b", version: 1 }],
      values: [value("a", "z"), value("b", "k"), value("a", "c")],
      revision: "r",
      consumerId: "",
    };
    expect(auditProject(req([{ name: "a" }, { name: "b" }]), res)).toEqual([
      { mesh: "m", name: "a", version: 3, keys: ["c", "z"], stage: "current" },
      { mesh: "m", name: "b", version: 1, keys: ["k"], stage: "current" },
    ]);
  });

  it("when a projection read a secret's previous stage, then that source's target says previous, and of both stages the older version is previous", () => {
    const value = (secret: string, key: string) => ({ secret, key, env: `${secret}_${key}`, path: `${secret}/${key}`, mode: 0o400, value: Buffer.alloc(0) });
    const both: Projection = { sources: [{ mesh: "m", name: "a", version: 4 }, { mesh: "m", name: "a", version: 3 }], values: [value("a", "k")], revision: "r", consumerId: "" };
    expect(auditProject(req([{ name: "a" }, { name: "a", stage: "previous" }]), both).map((t) => [t.version, t.stage])).toEqual([
      [4, "current"],
      [3, "previous"],
    ]);
    const previousOnly: Projection = { sources: [{ mesh: "m", name: "a", version: 3 }], values: [value("a", "k")], revision: "r", consumerId: "" };
    expect(auditProject(req([{ name: "a", stage: "previous" }]), previousOnly)).toMatchObject([{ version: 3, stage: "previous" }]);
  });
});
