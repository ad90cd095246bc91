/**
 * GetSecret and ProjectSecrets through the answer cache (answer-cache.ts): a hot read is
 * answered with the bytes encoded the first time, after reading its secrets again
 * through the domain (from the back-end's read cache: no SQL while they are unchanged)
 * and finding rows of the same stamp (stampOf: what the rows are, not which objects), so
 * an update, a delete, a new or revoked grant, an expiry or another caller all miss and
 * take the full path.
 * The handler then returns an EncodedAnswer: the response serializer writes its bytes as
 * they are and the audit takes its targets.
 */
import { nextTimeChange } from "../../domain/access.js";
import type { Principal } from "../../domain/principal.js";
import { readProjection, readSources, type ProjectionDeps } from "../../domain/projection.js";
import type { Secrets, SourceRow } from "../../domain/secrets.js";
import type { GetSecretRequest, Projection, ProjectSecretsRequest, Secret } from "../../gen/secrets/v1/secrets.js";
import type { AnswerCache, AnswerSource, KeyGeneration, Stamp } from "./answer-cache.js";
import { auditGet, auditProject } from "./audit-targets.js";
import type { AuditTarget } from "./call.js";
import { toSecretMessage } from "./convert.js";
import { EncodedAnswer, encodeProjection, encodeSecret } from "./response-encoding.js";

/** Where an answer's secrets are read again (a request that was valid for its caller), and its audit targets. */
export type AnswerMeta =
  | { readonly kind: "get"; readonly mesh: string; readonly name: string; readonly version: number; readonly audit: readonly AuditTarget[] }
  | { readonly kind: "project"; readonly mesh: string; readonly names: readonly string[]; readonly audit: readonly AuditTarget[] };

export type Answers = AnswerCache<AnswerMeta>;

/** Method, caller and request, serialized so that no two different triples give the same key. */
function keyOf(method: string, p: Principal, req: unknown): string {
  return JSON.stringify([method, p.tenant, p.sub, p.roles, p.meshes ?? null, req]);
}

/**
 * What a source row is, for the answer's freshness: its uid, version, etag, the version
 * row's number, the grants MAC and the row MAC (the grant set itself when a back-end
 * keeps no MACs). Any write of the secret changes its etag and MAC, any grant write its
 * grants MAC; a missing source is "".
 */
export function stampOf(r: SourceRow | undefined): Stamp {
  if (r === undefined) return { text: "" };
  const s = r.secret;
  const v = r.version;
  const grants = s.grantsMac === undefined ? JSON.stringify(r.grants) : base64(s.grantsMac);
  const versionMac = v?.mac === undefined ? "" : base64(v.mac);
  return {
    text: `${s.uid}\0${s.version}\0${s.etag}\0${v?.version ?? ""}\0${versionMac}\0${grants}\0${s.mac === undefined ? "" : base64(s.mac)}`,
    payload: v?.payload,
    dek: v?.dek,
  };
}

function base64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

/** Where an answer's sources are read again, through the domain, and its keys. */
export interface AnswerDeps {
  readonly secrets: Secrets;
  readonly projection: ProjectionDeps;
  readonly keyring: KeyGeneration;
  readonly now?: () => number;
}

/** The rows read again for the entry under `key`, when there is one. */
async function rowsAgain(deps: AnswerDeps, p: Principal, meta: AnswerMeta): Promise<ReadonlyArray<SourceRow | undefined>> {
  return meta.kind === "get" ? [await deps.secrets.source(p, meta.mesh, meta.name, meta.version)] : readSources(deps.projection, p, meta.mesh, meta.names);
}

async function cached(cache: Answers, deps: AnswerDeps, key: string, p: Principal, now: () => number): Promise<EncodedAnswer | undefined> {
  const held = cache.meta(key);
  if (held === undefined) return undefined;
  const rows = await rowsAgain(deps, p, held);
  const hit = cache.answer(key, deps.keyring.current(), rows.map(stampOf), now());
  return hit === undefined ? undefined : new EncodedAnswer(hit.encoded, hit.meta.audit);
}

/** Keeps `encoded` (made from `rows` at `now`) and returns what to answer: a copy when kept. */
function keep(cache: Answers, key: string, ring: object, rows: ReadonlyArray<SourceRow | undefined>, now: number, encoded: Buffer, meta: AnswerMeta): EncodedAnswer {
  let validUntil = Infinity;
  const sources: AnswerSource[] = [];
  for (const r of rows) {
    if (r === undefined) continue;
    validUntil = Math.min(validUntil, nextTimeChange(r.secret, r.grants, now));
    sources.push({ uid: r.secret.uid });
  }
  const kept = cache.add(key, ring, rows.map(stampOf), sources, validUntil, encoded, meta);
  return new EncodedAnswer(kept ? Buffer.from(encoded) : encoded, meta.audit);
}

export async function answerGet(deps: AnswerDeps, cache: Answers | undefined, p: Principal, req: GetSecretRequest): Promise<Secret | EncodedAnswer> {
  const secrets = deps.secrets;
  // A previous stage ends without a write to the current row (a rotation retires it), which is what a memo is checked against: never kept.
  if (cache === undefined || !cache.on || req.stage === "previous") {
    const { secret, data, stage } = await secrets.get(p, req);
    return toSecretMessage(secret, data, stage);
  }
  const key = keyOf("get", p, req);
  const hit = await cached(cache, deps, key, p, deps.now ?? Date.now);
  if (hit !== undefined) return hit;
  const ring = deps.keyring.current();
  const read = await secrets.get(p, req);
  const message = toSecretMessage(read.secret, read.data, read.stage);
  const meta: AnswerMeta = { kind: "get", mesh: req.mesh, name: req.name, version: req.version, audit: auditGet(req, message) };
  return keep(cache, key, ring, [read.row], read.now, encodeSecret(message), meta);
}

export async function answerProjection(deps: AnswerDeps, cache: Answers | undefined, p: Principal, req: ProjectSecretsRequest): Promise<Projection | EncodedAnswer> {
  // As GetSecret's previous stage: a projection that reads one is never kept.
  if (cache === undefined || !cache.on || req.items.some((it) => it.stage === "previous")) return (await readProjection(deps.projection, p, req)).projection;
  const key = keyOf("project", p, req);
  const hit = await cached(cache, deps, key, p, deps.now ?? Date.now);
  if (hit !== undefined) return hit;
  const ring = deps.keyring.current();
  const read = await readProjection(deps.projection, p, req);
  const names = [...read.rows.keys()];
  const meta: AnswerMeta = { kind: "project", mesh: req.mesh, names, audit: auditProject(req, read.projection) };
  return keep(cache, key, ring, names.map((n) => read.rows.get(n)), read.now, encodeProjection(read.projection), meta);
}
