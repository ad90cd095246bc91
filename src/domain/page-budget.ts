/**
 * How many bytes a list answer may take once encoded. The server's send limit is
 * 16 MiB; a page of ListSecrets, ListConsumers or ListAuditEvents stops at PAGE_BYTES,
 * so no page of any list is ever unanswerable, whatever metadata its entries hold, and
 * no page costs much of one event-loop turn to encode (#27: a 4 MiB page took 50-100 ms
 * in one go, and eight listings in flight raised other tenants' p99 by ~460 ms). A page
 * that ends early still has its next_page_token. ListGrants has no paging: all of a
 * secret's grants go in one answer of at most GRANTS_BYTES. Sizes are upper bounds of
 * the protobuf encoding (UTF-8 bytes plus the widest tag and length prefix of each
 * field), cheap enough to take per row.
 */
import type { AuditRow, GrantRow, LeaseRow, SecretRow } from "../storage/storage.js";

export const PAGE_BYTES = 1024 * 1024;
export const GRANTS_BYTES = 4 * 1024 * 1024;

/** Tag (1-2 bytes) and length prefix (up to 5 bytes) of one length-delimited field. */
const FIELD = 7;
/** Ints, bools, enums and timestamps of one message, with room to spare. */
const FIXED = 96;

function str(s: string): number {
  return FIELD + Buffer.byteLength(s, "utf8");
}

function map(m: Readonly<Record<string, string>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(m)) n += FIELD + str(k) + str(v);
  return n;
}

function list(xs: readonly string[]): number {
  let n = 0;
  for (const x of xs) n += str(x);
  return n;
}

/** An upper bound of one Secret (metadata only, as ListSecrets sends it) inside its response. */
export function secretEntryBytes(row: SecretRow): number {
  return (
    FIELD + FIXED + str(row.uid) + str(row.mesh) + str(row.name) + str(row.type) + str(row.description) +
    str(row.owner) + str(row.etag) + map(row.labels) + map(row.annotations) + list(row.keys)
  );
}

/** An upper bound of one Grant inside its response (with room for the mesh and name it carries). */
export function grantEntryBytes(g: GrantRow, mesh: string, name: string): number {
  return FIELD + FIXED + str(mesh) + str(name) + str(g.subject) + str(g.grantedBy) + list(g.keys);
}

/** An upper bound of one Consumer inside its response. */
export function consumerEntryBytes(l: LeaseRow): number {
  const applied = l.applied.reduce((n, a) => n + FIELD + FIXED + str(a.mesh) + str(a.name), 0);
  return FIELD + FIXED + str(l.sub) + list(l.roles) + str(l.revision) + str(l.replica) + str(l.watchId) + str(l.appliedRevision) + FIXED + applied;
}

/** An upper bound of one AuditEvent inside its response. */
export function auditEntryBytes(e: AuditRow): number {
  return FIELD + FIXED + str(e.requestId) + str(e.method) + str(e.sub) + str(e.mesh) + str(e.name) + list(e.keys) + str(e.code) + str(e.peer);
}
