/**
 * The claims mapping (SPEC §7 --claims-mapping): how a verified token of an issuer that
 * does not speak secretd's claims (a Kubernetes service-account token) becomes a
 * Principal. Per issuer: the tenant (fixed, or from a claim), the meshes (from a claim
 * such as `kubernetes.io.namespace`, or a fixed list), `sub` as the token gives it, and
 * roles only from the binding list: a subject or a namespace → roles. A token of a mapped
 * issuer that no binding names is refused, and its own `roles`, `meshes` and tenant claims
 * are never read.
 *
 * File shape (YAML):
 *   issuers:
 *     - issuer: https://kubernetes.default.svc.cluster.local
 *       tenant: acme                          # or tenantClaim: <claim path>
 *       meshClaim: kubernetes.io.namespace    # or meshes: [a, b] / ["*"]
 *       namespaceClaim: kubernetes.io.namespace   # optional, this default
 *       bindings:
 *         - subject: system:serviceaccount:payments:api
 *           roles: [data-developer]
 *         - namespace: monitoring
 *           roles: []                         # admitted; only its grants count
 */
import { readFileSync } from "node:fs";
import type { JWTPayload } from "jose";
import { YAMLError, parse as parseYaml } from "yaml";
import type { Principal } from "../domain/principal.js";
import { isCleanIdentifier } from "../domain/text.js";
import { SecretdError } from "../errors.js";

type Path = readonly string[];

interface Binding {
  readonly subject?: string;
  readonly namespace?: string;
  readonly roles: readonly string[];
}

export interface IssuerMapping {
  readonly issuer: string;
  readonly tenant: { readonly fixed: string } | { readonly claim: Path };
  /** meshes.fixed undefined = every mesh. */
  readonly meshes: { readonly fixed: readonly string[] | undefined } | { readonly claim: Path };
  readonly namespaceClaim: Path;
  readonly bindings: readonly Binding[];
}

export interface ClaimsMapping {
  readonly issuers: ReadonlyMap<string, IssuerMapping>;
}

export const DEFAULT_NAMESPACE_CLAIM = "kubernetes.io.namespace";

function badFile(where: string, problem: string): SecretdError {
  return new SecretdError("INVALID_ARGUMENT", `invalid configuration --claims-mapping / SECRETD_CLAIMS_MAPPING ${where}: ${problem}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], fail: (p: string) => never): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`unknown key "${k.slice(0, 64)}" (expected ${allowed.join(", ")})`);
}

function cleanString(v: unknown, what: string, fail: (p: string) => never): string {
  if (typeof v !== "string" || v === "") return fail(`${what} must be a non-empty string`);
  if (!isCleanIdentifier(v)) return fail(`${what} must be well-formed Unicode without control characters`);
  return v;
}

function stringList(v: unknown, what: string, fail: (p: string) => never): string[] {
  if (!Array.isArray(v)) return fail(`${what} must be a list of strings`);
  return v.map((x, i) => cleanString(x, `${what}[${i}]`, fail));
}

function claimPath(v: unknown, what: string, fail: (p: string) => never): Path {
  const s = cleanString(v, what, fail);
  const parts = s.split(".");
  if (parts.some((p) => p === "")) fail(`${what} "${s.slice(0, 128)}" is not a claim path like kubernetes.io.namespace`);
  return parts;
}

function parseIssuer(entry: unknown, where: string): IssuerMapping {
  const fail = (problem: string): never => {
    throw badFile(where, problem);
  };
  if (!isObject(entry)) return fail("must be a mapping with issuer, tenant or tenantClaim, meshClaim or meshes, bindings");
  onlyKeys(entry, ["issuer", "tenant", "tenantClaim", "meshClaim", "meshes", "namespaceClaim", "bindings"], fail);
  const issuer = cleanString(entry.issuer, "issuer", fail);
  if (("tenant" in entry) === ("tenantClaim" in entry)) fail("needs exactly one of tenant (fixed) or tenantClaim (a claim path)");
  const tenant = "tenant" in entry ? { fixed: cleanString(entry.tenant, "tenant", fail) } : { claim: claimPath(entry.tenantClaim, "tenantClaim", fail) };
  if (("meshClaim" in entry) === ("meshes" in entry)) fail('needs exactly one of meshClaim (a claim path such as kubernetes.io.namespace) or meshes (a list, ["*"] = every mesh)');
  let meshes: IssuerMapping["meshes"];
  if ("meshClaim" in entry) {
    meshes = { claim: claimPath(entry.meshClaim, "meshClaim", fail) };
  } else {
    const list = stringList(entry.meshes, "meshes", fail);
    if (list.includes("*") && list.length > 1) fail('meshes must be ["*"] or a list of meshes, not both');
    meshes = { fixed: list.includes("*") ? undefined : Object.freeze(list) };
  }
  const namespaceClaim = claimPath(entry.namespaceClaim ?? DEFAULT_NAMESPACE_CLAIM, "namespaceClaim", fail);
  if (!Array.isArray(entry.bindings)) return fail("bindings must be a list of {subject or namespace, roles}");
  const bindings = entry.bindings.map((b: unknown, i): Binding => {
    const failB = (problem: string): never => {
      throw badFile(`${where}.bindings[${i}]`, problem);
    };
    if (!isObject(b)) return failB("must be a mapping {subject or namespace, roles}");
    onlyKeys(b, ["subject", "namespace", "roles"], failB);
    if (("subject" in b) === ("namespace" in b)) failB("needs exactly one of subject or namespace");
    const roles = Object.freeze(stringList(b.roles, "roles", failB));
    return "subject" in b ? { subject: cleanString(b.subject, "subject", failB), roles } : { namespace: cleanString(b.namespace, "namespace", failB), roles };
  });
  return { issuer, tenant, meshes, namespaceClaim, bindings };
}

/** A parsed mapping document; `file` names it in messages. */
export function parseClaimsMapping(doc: unknown, file: string): ClaimsMapping {
  if (!isObject(doc)) throw badFile(file, "expected a mapping with an issuers list");
  onlyKeys(doc, ["issuers"], (p) => {
    throw badFile(file, p);
  });
  if (!Array.isArray(doc.issuers) || doc.issuers.length === 0) throw badFile(file, "issuers must be a non-empty list");
  const issuers = new Map<string, IssuerMapping>();
  doc.issuers.forEach((entry: unknown, i) => {
    const m = parseIssuer(entry, `${file}: issuers[${i}]`);
    if (issuers.has(m.issuer)) throw badFile(`${file}: issuers[${i}]`, `issuer ${JSON.stringify(m.issuer.slice(0, 200))} is mapped twice`);
    issuers.set(m.issuer, m);
  });
  return { issuers };
}

export function readClaimsMapping(file: string): ClaimsMapping {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw badFile(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const pos = err instanceof YAMLError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : "";
    throw badFile(file, `not valid YAML${pos}`);
  }
  return parseClaimsMapping(doc, file);
}

/**
 * The value at a dotted claim path. A key may itself hold dots ("kubernetes.io"): at
 * each level the longest run of segments naming an own key wins.
 */
export function claimAt(payload: unknown, path: Path): unknown {
  if (path.length === 0) return payload;
  if (!isObject(payload)) return undefined;
  for (let n = path.length; n >= 1; n--) {
    const key = path.slice(0, n).join(".");
    if (Object.hasOwn(payload, key)) {
      const found = claimAt(payload[key], path.slice(n));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function rejected(reason: string): SecretdError {
  return new SecretdError("UNAUTHENTICATED", `invalid token: ${reason}`);
}

function claimString(payload: JWTPayload, path: Path): string {
  const v = claimAt(payload, path);
  const name = path.join(".");
  if (typeof v !== "string" || v === "") throw rejected(`claim "${name}" must be a non-empty string`);
  if (!isCleanIdentifier(v)) throw rejected(`claim "${name}" must be well-formed Unicode without control characters`);
  return v;
}

/**
 * The Principal a verified token of a mapped issuer stands for. Roles are the union of
 * every binding naming its `sub` or its namespace; none → PERMISSION_DENIED.
 */
export function mappedPrincipal(m: IssuerMapping, payload: JWTPayload): Principal {
  const sub = claimString(payload, ["sub"]);
  const tenant = "fixed" in m.tenant ? m.tenant.fixed : claimString(payload, m.tenant.claim);
  const meshes = "fixed" in m.meshes ? m.meshes.fixed : Object.freeze([claimString(payload, m.meshes.claim)]);
  const nsValue = claimAt(payload, m.namespaceClaim);
  const namespace = typeof nsValue === "string" && nsValue !== "" ? nsValue : undefined;
  const roles = new Set<string>();
  let bound = false;
  for (const b of m.bindings) {
    if (b.subject === sub || (b.namespace !== undefined && b.namespace === namespace)) {
      bound = true;
      for (const r of b.roles) roles.add(r);
    }
  }
  if (!bound) throw new SecretdError("PERMISSION_DENIED", "this identity is not bound in the claims mapping");
  return Object.freeze({ sub, tenant, roles: Object.freeze([...roles]), meshes, exp: payload.exp });
}
