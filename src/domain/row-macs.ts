/**
 * What each row MAC covers (the text fed to crypto/row-mac.ts), one injective encoding
 * per kind of row, each with its own label, every field length-framed (framed-text.ts):
 *
 * - a secret row: every column, bound to its uid. So owner, type, immutable, expire_time,
 *   labels, annotations, description, keys, and the current-version pointer with its etag
 *   cannot change by plain SQL; and a pointer set back to an older version is also caught
 *   by the newest stored version (AuthenticatedStorage), whose own MAC binds its number.
 * - the grant set of a secret: every grant row (its primary key and every column) in
 *   primary-key order, bound to the secret's uid; kept in the secret row. So adding,
 *   altering or removing a grant row by plain SQL is caught, which no per-row MAC could
 *   do for a removed row.
 * - a version row: uid, version number, keys, create time (the payload and the wrapped
 *   data key are bound by their AEAD, whose AAD binds the version number too).
 * - a create_requests row: its primary key (tenant, request id), secret uid, fingerprint.
 */
import type { KeyringSource } from "../crypto/keyring.js";
import { framedText, type TextPart as Part } from "../crypto/framed-text.js";
import { rowMac, verifyRowMac } from "../crypto/row-mac.js";
import type { CreateRequestRow, GrantRow, SecretRow, VersionRow } from "../storage/storage.js";

type SecretFields = Omit<SecretRow, "mac" | "grantsMac">;
type VersionFields = Pick<VersionRow, "uid" | "version" | "keys" | "createTime">;

function pushList(parts: Part[], list: readonly string[]): void {
  parts.push(list.length, ...list);
}

/** In key order, so a back-end that reorders a JSON object's keys (PostgreSQL's jsonb) does not break it. */
function pushMap(parts: Part[], m: Readonly<Record<string, string>>): void {
  const keys = Object.keys(m);
  if (keys.length > 1) keys.sort();
  parts.push(keys.length);
  for (const k of keys) parts.push(k, m[k]!);
}

/** An absent time is "" (a number never encodes as the empty string). */
const time = (t: number | undefined): Part => t ?? "";

export function secretMacInput(s: SecretFields): string {
  const parts: Part[] = ["secretd/secret-row/v1", s.uid, s.tenant, s.mesh, s.name, s.type, s.description, s.owner, s.immutable ? 1 : 0];
  parts.push(s.version, s.etag, s.createTime, s.updateTime, time(s.expireTime));
  pushList(parts, s.keys);
  pushMap(parts, s.labels);
  pushMap(parts, s.annotations);
  return framedText(parts);
}

/** Grants in primary-key order (subject, level), as SqliteStorage returns them. */
export function grantsMacInput(secretUid: string, grants: readonly GrantRow[]): string {
  const sorted = [...grants].sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : a.level - b.level));
  const parts: Part[] = ["secretd/grants/v1", secretUid, sorted.length];
  for (const g of sorted) {
    parts.push(g.secretUid, g.subject, g.level, time(g.expireTime), g.grantedBy, g.createTime);
    pushList(parts, g.keys);
  }
  return framedText(parts);
}

export function versionMacInput(v: VersionFields): string {
  const parts: Part[] = ["secretd/version-row/v1", v.uid, v.version, v.createTime];
  pushList(parts, v.keys);
  return framedText(parts);
}

export function requestMacInput(tenant: string, r: Omit<CreateRequestRow, "mac">): string {
  return framedText(["secretd/create-request/v1", tenant, r.requestId, r.secretUid, r.fingerprint]);
}

/** MACs under the active KEK, and checks under the KEK each MAC names (DATA_LOSS on failure). */
export const signSecret = (keys: KeyringSource, s: SecretFields): Buffer => rowMac(keys.current().active, secretMacInput(s));
export const signGrants = (keys: KeyringSource, uid: string, grants: readonly GrantRow[]): Buffer => rowMac(keys.current().active, grantsMacInput(uid, grants));
export const signVersion = (keys: KeyringSource, v: VersionFields): Buffer => rowMac(keys.current().active, versionMacInput(v));
export const signRequest = (keys: KeyringSource, tenant: string, r: Omit<CreateRequestRow, "mac">): Buffer =>
  rowMac(keys.current().active, requestMacInput(tenant, r));

export function checkSecret(keys: KeyringSource, s: SecretRow): void {
  verifyRowMac(keys, s.mac, secretMacInput(s), `secret row ${s.uid}`);
}

export function checkGrants(keys: KeyringSource, uid: string, grants: readonly GrantRow[], grantsMac: Uint8Array | undefined): void {
  verifyRowMac(keys, grantsMac, grantsMacInput(uid, grants), `grants of secret ${uid}`);
}

export function checkVersion(keys: KeyringSource, v: VersionFields & { readonly mac?: Uint8Array | undefined }): void {
  verifyRowMac(keys, v.mac, versionMacInput(v), `version ${v.version} of secret ${v.uid}`);
}

export function checkRequest(keys: KeyringSource, tenant: string, r: CreateRequestRow): void {
  verifyRowMac(keys, r.mac, requestMacInput(tenant, r), `create request of secret ${r.secretUid}`);
}
