/**
 * The rows both SQL back-ends store, as their drivers hand them back, and the one mapping
 * from those records to the storage contract's rows. better-sqlite3 gives integers as
 * numbers and booleans as 0/1; pg gives BIGINT as strings and BOOLEAN as booleans: `num`
 * and the `immutable` test take either, so the mappers are written once.
 */
import type { CreateRequestRow, GrantRow, LeaseRow, MacRows, SecretRow, SecretWithVersion, SentRevision, SourceVersion, StoredAuditRow, VersionKeyRow, VersionRow, WatchAckView, WatchLease } from "../storage.js";

/** An integer column: a number from SQLite, a string from PostgreSQL's BIGINT. */
export type Int = number | string;

export interface SecretRecord {
  uid: string;
  tenant: string;
  mesh: string;
  name: string;
  type: string;
  description: string;
  owner: string;
  labels: string;
  annotations: string;
  immutable: number | boolean;
  version: Int;
  etag: string;
  keys: string;
  create_time: Int;
  update_time: Int;
  expire_time: Int | null;
  mac: Buffer | null;
  grants_mac: Buffer | null;
}

export interface GrantRecord {
  secret_uid: string;
  subject: string;
  permission: number;
  keys: string;
  expire_time: Int | null;
  granted_by: string;
  create_time: Int;
}

export interface LeaseRecord {
  watch_id: string;
  secret_uid: string;
  tenant: string;
  sub: string;
  roles: string;
  revision: string;
  since: Int;
  last_seen: Int;
  expire_time: Int;
  replica: string;
  applied_revision: string;
  applied_time: Int;
  applied: string;
}

export interface WatchAckRecord {
  tenant: string;
  sub: string;
  sent: string;
  applied_seq: Int;
}

export interface AuditRecord {
  id: Int;
  tenant: string;
  time: Int;
  request_id: string;
  method: string;
  sub: string;
  mesh: string;
  name: string;
  version: Int;
  keys: string;
  code: string;
  peer: string;
  stage: string;
}

export interface VersionMetaRecord {
  uid: string;
  version: Int;
  keys: string;
  create_time: Int;
  mac: Buffer | null;
}

/** A version LEFT JOINed to its secret (v_ columns): all NULL when the secret has no such version. */
export interface JoinedVersionRecord {
  v_version: Int | null;
  v_keys: string | null;
  v_dek: Buffer | null;
  v_payload: Buffer | null;
  v_create_time: Int | null;
  v_mac: Buffer | null;
}

/** The newest stored version of the row's uid (NULL or 0 when none): a current pointer below it is a rollback. */
export interface LatestVersion {
  latest_version: Int | null;
}

export interface RequestRecord {
  tenant: string;
  sub: string;
  request_id: string;
  secret_uid: string;
  fingerprint: string;
  mac: Buffer | null;
}

export interface VersionKeyRecord {
  uid: string;
  version: Int;
  tenant: string;
  mesh: string;
  name: string;
  dek: Buffer;
}

/** A secret's identity, what a change names. */
export type Identity = Pick<SecretRow, "tenant" | "mesh" | "name" | "uid">;

export const SECRET_FIELDS = [
  "uid", "tenant", "mesh", "name", "type", "description", "owner", "labels", "annotations", "immutable",
  "version", "etag", "keys", "create_time", "update_time", "expire_time", "mac", "grants_mac",
] as const;

/** The secret row's columns, of the table aliased `s`. */
export const SECRET_COLUMNS = SECRET_FIELDS.map((c) => `s.${c}`).join(", ");

export const GRANT_FIELDS = ["secret_uid", "subject", "permission", "keys", "expire_time", "granted_by", "create_time"] as const;

/** Bigint coercion: PostgreSQL's BIGINT arrives as a string (every stored value fits a double). */
export function num(v: Int): number {
  return typeof v === "number" ? v : Number(v);
}

export const blob = (b: Uint8Array | undefined): Buffer | null => (b === undefined ? null : Buffer.from(b));

export function sameBytes(a: Uint8Array | null | undefined, b: Uint8Array | undefined): boolean {
  if (a === null || a === undefined || b === undefined) return (a ?? undefined) === b;
  return Buffer.compare(a, b) === 0;
}

export function toSecret(r: SecretRecord): SecretRow {
  return {
    uid: r.uid,
    tenant: r.tenant,
    mesh: r.mesh,
    name: r.name,
    type: r.type,
    description: r.description,
    owner: r.owner,
    labels: JSON.parse(r.labels) as Record<string, string>,
    annotations: JSON.parse(r.annotations) as Record<string, string>,
    immutable: r.immutable === true || r.immutable === 1,
    version: num(r.version),
    etag: r.etag,
    keys: JSON.parse(r.keys) as string[],
    createTime: num(r.create_time),
    updateTime: num(r.update_time),
    expireTime: r.expire_time === null ? undefined : num(r.expire_time),
    mac: r.mac ?? undefined,
    grantsMac: r.grants_mac ?? undefined,
  };
}

export function toGrant(r: GrantRecord): GrantRow {
  return {
    secretUid: r.secret_uid,
    subject: r.subject,
    level: r.permission,
    keys: JSON.parse(r.keys) as string[],
    expireTime: r.expire_time === null ? undefined : num(r.expire_time),
    grantedBy: r.granted_by,
    createTime: num(r.create_time),
  };
}

export function toLease(r: LeaseRecord): LeaseRow {
  return {
    watchId: r.watch_id,
    secretUid: r.secret_uid,
    tenant: r.tenant,
    sub: r.sub,
    roles: JSON.parse(r.roles) as string[],
    revision: r.revision,
    since: num(r.since),
    lastSeen: num(r.last_seen),
    expireTime: num(r.expire_time),
    replica: r.replica,
    appliedRevision: r.applied_revision,
    appliedTime: num(r.applied_time),
    applied: sourcesOf(JSON.parse(r.applied) as StoredSource[]),
  };
}

type StoredSource = [uid: string, version: number, mesh: string, name: string];

function stored(sources: readonly SourceVersion[]): StoredSource[] {
  return sources.map((s) => [s.uid, s.version, s.mesh, s.name]);
}

function sourcesOf(rows: readonly StoredSource[]): SourceVersion[] {
  return rows.map(([uid, version, mesh, name]) => ({ uid, version, mesh, name }));
}

/** Source versions as stored in consumer_watches (sent, applied): `[[uid, version, mesh, name], …]`. */
export function sourcesJson(sources: readonly SourceVersion[]): string {
  return JSON.stringify(stored(sources));
}

/** A watch's recent sends as stored: `[[seq, revision, sources], …]`, newest last. */
export function sentJson(sent: readonly SentRevision[]): string {
  return JSON.stringify(sent.map((s) => [s.seq, s.revision, stored(s.sources)]));
}

export function toWatchAckView(r: WatchAckRecord): WatchAckView {
  const sent = JSON.parse(r.sent) as [number, string, StoredSource[]][];
  return {
    tenant: r.tenant,
    sub: r.sub,
    sent: sent.map(([seq, revision, sources]) => ({ seq, revision, sources: sourcesOf(sources) })),
    appliedSeq: num(r.applied_seq),
  };
}

export function toAudit(r: AuditRecord): StoredAuditRow {
  return {
    id: num(r.id),
    tenant: r.tenant,
    time: num(r.time),
    requestId: r.request_id,
    method: r.method,
    sub: r.sub,
    mesh: r.mesh,
    name: r.name,
    version: num(r.version),
    keys: JSON.parse(r.keys) as string[],
    code: r.code,
    peer: r.peer,
    stage: r.stage,
  };
}

/** The version columns of `secretWithVersion` (statements.ts) as a row, or undefined. */
export function toJoinedVersion(uid: string, r: JoinedVersionRecord): VersionRow | undefined {
  if (r.v_version === null) return undefined;
  return { uid, version: num(r.v_version), keys: JSON.parse(r.v_keys!) as string[], dek: r.v_dek!, payload: r.v_payload!, createTime: num(r.v_create_time!), mac: r.v_mac ?? undefined };
}

/** One row of `secretWithVersion` with the secret's grants. */
export function toSecretWithVersion(r: SecretRecord & JoinedVersionRecord & LatestVersion, grants: readonly GrantRecord[]): SecretWithVersion {
  return { secret: toSecret(r), version: toJoinedVersion(r.uid, r), grants: grants.map(toGrant), latestVersion: num(r.latest_version ?? 0) };
}

export function toVersionMeta(r: VersionMetaRecord): MacRows["versions"][number] {
  return { uid: r.uid, version: num(r.version), keys: JSON.parse(r.keys) as string[], createTime: num(r.create_time), mac: r.mac ?? undefined };
}

export function toRequest(r: RequestRecord): CreateRequestRow {
  return { sub: r.sub, requestId: r.request_id, secretUid: r.secret_uid, fingerprint: r.fingerprint, mac: r.mac ?? undefined };
}

export function toVersionKey(r: VersionKeyRecord): VersionKeyRow {
  return { uid: r.uid, version: num(r.version), tenant: r.tenant, mesh: r.mesh, name: r.name, dek: r.dek };
}

/** Secrets with every MAC-covered row of theirs (grants, version metadata, create requests), grouped by uid. */
export function toMacRows(
  secrets: readonly SecretRecord[],
  grants: readonly GrantRecord[],
  versions: readonly VersionMetaRecord[],
  requests: readonly RequestRecord[],
): MacRows[] {
  const by = new Map(secrets.map((s) => [s.uid, { secret: toSecret(s), grants: [] as GrantRow[], versions: [] as MacRows["versions"][number][], requests: [] as MacRows["requests"][number][] }]));
  for (const g of grants) by.get(g.secret_uid)?.grants.push(toGrant(g));
  for (const v of versions) by.get(v.uid)?.versions.push(toVersionMeta(v));
  for (const q of requests) by.get(q.secret_uid)?.requests.push({ tenant: q.tenant, ...toRequest(q) });
  return [...by.values()];
}

/*
 * The other way: rows as the bind objects of statements.ts. Booleans go as 0/1 (SQLite
 * binds no booleans; PostgreSQL reads '1'/'0' as a BOOLEAN), JSON as text, bytes as Buffers.
 */

export function secretBinds(s: SecretRow): Record<string, unknown> {
  return {
    uid: s.uid,
    tenant: s.tenant,
    mesh: s.mesh,
    name: s.name,
    type: s.type,
    description: s.description,
    owner: s.owner,
    labels: JSON.stringify(s.labels),
    annotations: JSON.stringify(s.annotations),
    immutable: s.immutable ? 1 : 0,
    version: s.version,
    etag: s.etag,
    keys: JSON.stringify(s.keys),
    create_time: s.createTime,
    update_time: s.updateTime,
    expire_time: s.expireTime ?? null,
    mac: blob(s.mac),
    grants_mac: blob(s.grantsMac),
  };
}

export function versionBinds(v: VersionRow): Record<string, unknown> {
  return { uid: v.uid, version: v.version, keys: JSON.stringify(v.keys), dek: Buffer.from(v.dek), payload: Buffer.from(v.payload), create_time: v.createTime, mac: blob(v.mac) };
}

export function grantBinds(g: GrantRow): Record<string, unknown> {
  return { secret_uid: g.secretUid, subject: g.subject, permission: g.level, keys: JSON.stringify(g.keys), expire_time: g.expireTime ?? null, granted_by: g.grantedBy, create_time: g.createTime };
}

/** A create request as stored with the secret it created (its uid, tenant and create time). */
export function requestBinds(secret: SecretRow, r: CreateRequestRow): Record<string, unknown> {
  return { tenant: secret.tenant, sub: r.sub, request_id: r.requestId, secret_uid: secret.uid, fingerprint: r.fingerprint, create_time: secret.createTime, mac: blob(r.mac) };
}

export function watchBinds(w: WatchLease): Record<string, unknown> {
  return { watch_id: w.watchId, replica: w.replica, tenant: w.tenant, sub: w.sub, roles: JSON.stringify(w.roles), revision: w.revision, since: w.since };
}
