/**
 * The rows both SQL back-ends store, as their drivers hand them back, and the one mapping
 * from those records to the storage contract's rows. better-sqlite3 gives integers as
 * numbers and booleans as 0/1; pg gives BIGINT as strings and BOOLEAN as booleans: `num`
 * and the `immutable` test take either, so the mappers are written once.
 */
import type { GrantRow, LeaseRow, SecretRow, SentRevision, SourceVersion, StoredAuditRow, WatchAckView } from "../storage.js";

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
}

export const SECRET_COLUMNS =
  "s.uid, s.tenant, s.mesh, s.name, s.type, s.description, s.owner, s.labels, s.annotations, s.immutable, s.version, s.etag, s.keys, s.create_time, s.update_time, s.expire_time, s.mac, s.grants_mac";

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
  };
}
