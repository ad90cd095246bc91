/**
 * GetSecret and ProjectSecrets through the answer cache (crypto/answer-cache.ts): a hot
 * read is answered with the bytes encoded the first time, after reading its secrets
 * again (from the read cache) and finding the very same rows, so an update, a delete, a
 * new or revoked grant, an expiry or another caller all miss and take the full path.
 * The handler then returns an EncodedAnswer: the response serializer writes its bytes as
 * they are and the audit takes its targets.
 */
import type { AnswerCache, AnswerSource } from "../../crypto/answer-cache.js";
import type { Keyring, KeyringSource } from "../../crypto/keyring.js";
import { nextTimeChange } from "../../domain/access.js";
import type { Principal } from "../../domain/principal.js";
import { readProjection, type ProjectionDeps } from "../../domain/projection.js";
import type { Secrets } from "../../domain/secrets.js";
import type { GetSecretRequest, Projection, ProjectSecretsRequest, Secret } from "../../gen/secrets/v1/secrets.js";
import type { SecretWithVersion, Storage } from "../../storage/storage.js";
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

/** The rows read again for the entry under `key`, when there is one. */
async function rowsAgain(storage: Storage, p: Principal, meta: AnswerMeta): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
  const scope = { tenant: p.tenant, mesh: meta.mesh };
  return meta.kind === "get" ? [await storage.readSecret(scope, meta.name, meta.version)] : storage.readSecrets(scope, meta.names);
}

/** What storage and keys an answer is checked against. */
export interface AnswerDeps {
  readonly storage: Storage;
  readonly keyring: KeyringSource;
  readonly now?: () => number;
}

async function cached(cache: Answers, deps: AnswerDeps, key: string, p: Principal, now: () => number): Promise<EncodedAnswer | undefined> {
  const held = cache.meta(key);
  if (held === undefined) return undefined;
  const rows = await rowsAgain(deps.storage, p, held);
  const hit = cache.answer(key, deps.keyring.current(), rows, now());
  return hit === undefined ? undefined : new EncodedAnswer(hit.encoded, hit.meta.audit);
}

/** Keeps `encoded` (made from `rows` at `now`) and returns what to answer: a copy when kept. */
function keep(cache: Answers, key: string, ring: Keyring, rows: ReadonlyArray<SecretWithVersion | undefined>, now: number, encoded: Buffer, meta: AnswerMeta): EncodedAnswer {
  let validUntil = Infinity;
  const sources: AnswerSource[] = [];
  for (const r of rows) {
    if (r === undefined) continue;
    validUntil = Math.min(validUntil, nextTimeChange(r.secret, r.grants, now));
    sources.push({ uid: r.secret.uid, bytes: (r.version?.payload.byteLength ?? 0) + (r.version?.dek.byteLength ?? 0) });
  }
  const kept = cache.add(key, ring, rows, sources, validUntil, encoded, meta);
  return new EncodedAnswer(kept ? Buffer.from(encoded) : encoded, meta.audit);
}

export async function answerGet(secrets: Secrets, deps: AnswerDeps, cache: Answers | undefined, p: Principal, req: GetSecretRequest): Promise<Secret | EncodedAnswer> {
  if (cache === undefined || !cache.on) {
    const { secret, data } = await secrets.get(p, req);
    return toSecretMessage(secret, data);
  }
  const key = keyOf("get", p, req);
  const hit = await cached(cache, deps, key, p, deps.now ?? Date.now);
  if (hit !== undefined) return hit;
  const ring = deps.keyring.current();
  const read = await secrets.get(p, req);
  const message = toSecretMessage(read.secret, read.data);
  const meta: AnswerMeta = { kind: "get", mesh: req.mesh, name: req.name, version: req.version, audit: auditGet(req, message) };
  return keep(cache, key, ring, [read.row], read.now, encodeSecret(message), meta);
}

export async function answerProjection(deps: ProjectionDeps, cache: Answers | undefined, p: Principal, req: ProjectSecretsRequest): Promise<Projection | EncodedAnswer> {
  if (cache === undefined || !cache.on) return (await readProjection(deps, p, req)).projection;
  const key = keyOf("project", p, req);
  const hit = await cached(cache, deps, key, p, deps.now ?? Date.now);
  if (hit !== undefined) return hit;
  const ring = deps.keyring.current();
  const read = await readProjection(deps, p, req);
  const names = [...read.rows.keys()];
  const meta: AnswerMeta = { kind: "project", mesh: req.mesh, names, audit: auditProject(req, read.projection) };
  return keep(cache, key, ring, names.map((n) => read.rows.get(n)), read.now, encodeProjection(read.projection), meta);
}
