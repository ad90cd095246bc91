import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { claimAt, mappedPrincipal, parseClaimsMapping, readClaimsMapping, type IssuerMapping } from "../../src/auth/claims-mapping.js";
import { secretdErrorOf } from "../helpers/errors.js";

const ISS = "https://kubernetes.default.svc.cluster.local";

/** A projected service-account token's claims, as the Kubernetes API server writes them. */
function k8sClaims(ns: string, sa: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISS,
    aud: ["secretd"],
    sub: `system:serviceaccount:${ns}:${sa}`,
    exp: 2_000_000_000,
    iat: 1_999_999_000,
    "kubernetes.io": { namespace: ns, pod: { name: "p-1", uid: "u-pod" }, serviceaccount: { name: sa, uid: "u-sa" } },
    ...extra,
  };
}

function mapping(entry: Record<string, unknown>): IssuerMapping {
  return parseClaimsMapping({ issuers: [{ issuer: ISS, ...entry }] }, "m.yaml").issuers.get(ISS)!;
}

const K8S = mapping({
  tenant: "acme",
  meshClaim: "kubernetes.io.namespace",
  bindings: [
    { subject: "system:serviceaccount:payments:api", roles: ["data-developer"] },
    { namespace: "payments", roles: ["reader"] },
    { namespace: "monitoring", roles: [] },
  ],
});

const refusal = secretdErrorOf;

describe("claimAt", () => {
  it("walks nested claims whose keys hold dots (kubernetes.io)", () => {
    const c = k8sClaims("payments", "api");
    expect(claimAt(c, ["kubernetes", "io", "namespace"])).toBe("payments");
    expect(claimAt(c, ["kubernetes", "io", "serviceaccount", "name"])).toBe("api");
    expect(claimAt(c, ["sub"])).toBe("system:serviceaccount:payments:api");
    expect(claimAt(c, ["kubernetes", "io", "nope"])).toBeUndefined();
    expect(claimAt({ "a.b": 1 }, ["a", "b"])).toBe(1);
    expect(claimAt({ a: { b: 2 } }, ["a", "b"])).toBe(2);
  });
});

describe("mappedPrincipal", () => {
  it("gives a bound service account the roles of every binding naming its subject or namespace, its namespace as its only mesh", () => {
    const p = mappedPrincipal(K8S, k8sClaims("payments", "api"));
    expect(p).toEqual({ sub: "system:serviceaccount:payments:api", tenant: "acme", roles: ["data-developer", "reader"], meshes: ["payments"], exp: 2_000_000_000 });
    expect(Object.isFrozen(p)).toBe(true);
  });

  it("gives a namespace binding to every service account of that namespace, and only its roles", () => {
    expect(mappedPrincipal(K8S, k8sClaims("payments", "batch")).roles).toEqual(["reader"]);
    const mon = mappedPrincipal(K8S, k8sClaims("monitoring", "prom"));
    expect(mon.roles).toEqual([]);
    expect(mon.meshes).toEqual(["monitoring"]);
  });

  it("refuses a service account no binding names (PERMISSION_DENIED)", () => {
    const e = refusal(() => mappedPrincipal(K8S, k8sClaims("other", "api")));
    expect(e.code).toBe("PERMISSION_DENIED");
    expect(e.message).not.toContain("other");
  });

  it("never reads the token's own roles, meshes or tenant claims", () => {
    const p = mappedPrincipal(K8S, k8sClaims("payments", "batch", { roles: ["tenant-admin"], meshes: ["*"], tenant: "evil" }));
    expect(p).toMatchObject({ tenant: "acme", roles: ["reader"], meshes: ["payments"] });
  });

  it("takes the tenant from a claim path and a fixed mesh list when so configured", () => {
    const m = mapping({ tenantClaim: "kubernetes.io.namespace", meshes: ["*"], bindings: [{ namespace: "team-a", roles: ["data-admin"] }] });
    expect(mappedPrincipal(m, k8sClaims("team-a", "x"))).toMatchObject({ tenant: "team-a", meshes: undefined, roles: ["data-admin"] });
    const fixed = mapping({ tenant: "t", meshes: ["m1", "m2"], bindings: [{ namespace: "team-a", roles: [] }] });
    expect(mappedPrincipal(fixed, k8sClaims("team-a", "x")).meshes).toEqual(["m1", "m2"]);
  });

  it("refuses a token without the claim the tenant or mesh comes from (UNAUTHENTICATED)", () => {
    const noNs = k8sClaims("payments", "api");
    delete noNs["kubernetes.io"];
    const e = refusal(() => mappedPrincipal(K8S, noNs));
    expect(e.code).toBe("UNAUTHENTICATED");
    expect(e.message).toContain("kubernetes.io.namespace");
    expect(refusal(() => mappedPrincipal(K8S, { ...k8sClaims("payments", "api"), sub: "" })).code).toBe("UNAUTHENTICATED");
    expect(refusal(() => mappedPrincipal(K8S, k8sClaims("pay\u0000ments", "api"))).code).toBe("UNAUTHENTICATED");
  });
});

describe("parseClaimsMapping", () => {
  const bad: [string, unknown, string][] = [
    ["not a mapping", [], "expected a mapping with an issuers list"],
    ["no issuers", { issuers: [] }, "issuers must be a non-empty list"],
    ["unknown top-level key", { issuers: [{}], extra: 1 }, 'unknown key "extra"'],
    ["entry without issuer", { issuers: [{ tenant: "a", meshClaim: "x", bindings: [] }] }, "issuers[0]: issuer must be a non-empty string"],
    ["both tenant and tenantClaim", { issuers: [{ issuer: ISS, tenant: "a", tenantClaim: "b", meshClaim: "x", bindings: [] }] }, "issuers[0]: needs exactly one of tenant"],
    ["neither meshClaim nor meshes", { issuers: [{ issuer: ISS, tenant: "a", bindings: [] }] }, "issuers[0]: needs exactly one of meshClaim"],
    ["a bad claim path", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "kubernetes..io", bindings: [] }] }, "is not a claim path"],
    ["meshes mixes * and names", { issuers: [{ issuer: ISS, tenant: "a", meshes: ["*", "x"], bindings: [] }] }, 'meshes must be ["*"] or a list'],
    ["bindings missing", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x" }] }, "bindings must be a list"],
    ["a binding with both subject and namespace", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x", bindings: [{ roles: [] }, { subject: "s", namespace: "n", roles: [] }] }] }, "issuers[0].bindings[0]: needs exactly one of subject or namespace"],
    ["a binding's misspelt key", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x", bindings: [{ subject: "s", role: ["r"] }] }] }, 'issuers[0].bindings[0]: unknown key "role"'],
    ["roles not a list", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x", bindings: [{ subject: "s", roles: "r" }] }] }, "bindings[0]: roles must be a list of strings"],
    ["an empty role", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x", bindings: [{ subject: "s", roles: ["ok", ""] }] }] }, "bindings[0]: roles[1] must be a non-empty string"],
    ["an issuer mapped twice", { issuers: [{ issuer: ISS, tenant: "a", meshClaim: "x", bindings: [] }, { issuer: ISS, tenant: "b", meshClaim: "x", bindings: [] }] }, "issuers[1]: issuer"],
  ];
  it.each(bad)("refuses %s, naming the entry", (_what, doc, message) => {
    const e = refusal(() => parseClaimsMapping(doc, "m.yaml"));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toContain("--claims-mapping");
    expect(e.message).toContain(message);
  });
});

describe("readClaimsMapping", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-mapping-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads the YAML file of deploy/kubernetes's ConfigMap shape", () => {
    const file = path.join(dir, "ok.yaml");
    writeFileSync(file, `issuers:\n  - issuer: ${ISS}\n    tenant: acme\n    meshClaim: kubernetes.io.namespace\n    bindings:\n      - subject: system:serviceaccount:payments:api\n        roles: [data-developer]\n`);
    expect(readClaimsMapping(file).issuers.get(ISS)?.bindings).toEqual([{ subject: "system:serviceaccount:payments:api", roles: ["data-developer"] }]);
  });

  it("names a missing file and a YAML error's position, never the file's text", () => {
    expect(refusal(() => readClaimsMapping(path.join(dir, "missing.yaml"))).message).toContain("cannot read it (ENOENT)");
    const file = path.join(dir, "bad.yaml");
    writeFileSync(file, "issuers: [\n  secret-looking-text: {\n");
    const e = refusal(() => readClaimsMapping(file));
    expect(e.message).toMatch(/not valid YAML at line \d+/);
    expect(e.message).not.toContain("secret-looking-text");
  });
});
