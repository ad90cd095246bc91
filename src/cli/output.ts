/**
 * How client verbs print: YAML or JSON documents, aligned tables, and KEY=VALUE env
 * lines. A value is shown as text when it is valid UTF-8; otherwise as base64 with a
 * marker that says so — `!!binary` in YAML, `{"base64": "…"}` in JSON — so no binary
 * value is ever mistaken for text, and both forms parse back to the exact bytes.
 */
import { stringify } from "yaml";
import { SecretdError } from "../errors.js";
import { showValue } from "../client/value-text.js";
import { Permission, type AuditEvent, type Consumer, type Grant, type Projection, type Secret } from "../gen/secrets/v1/secrets.js";

export type DocFormat = "yaml" | "json";


/** RFC 3339 in UTC, whole seconds unless the time has milliseconds. */
export function formatTime(d: Date | undefined): string | undefined {
  return d === undefined ? undefined : d.toISOString().replace(/\.000Z$/, "Z");
}

const PERMISSION_NAMES: Partial<Record<Permission, string>> = {
  [Permission.PERMISSION_READ]: "read",
  [Permission.PERMISSION_PROJECT]: "project",
  [Permission.PERMISSION_WRITE]: "write",
  [Permission.PERMISSION_ADMIN]: "admin",
};

export function permissionName(p: Permission): string {
  return PERMISSION_NAMES[p] ?? "unspecified";
}

/** Parses read|project|write|admin (any case, PERMISSION_ prefix allowed). */
export function parsePermission(name: string, flag = "--permission"): Permission {
  const n = name.toLowerCase().replace(/^permission_/, "");
  const hit = Object.entries(PERMISSION_NAMES).find(([, v]) => v === n);
  if (!hit) throw new SecretdError("INVALID_ARGUMENT", `${flag}: "${name.slice(0, 32)}" is not one of read, project, write, admin`);
  return Number(hit[0]) as Permission;
}

/** Drops undefined fields so documents only show what is set. */
function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function nonEmpty(m: Record<string, string>): Record<string, string> | undefined {
  return Object.keys(m).length > 0 ? m : undefined;
}

/** A secret as a document: metadata, plus `data` when `withData` (GetSecret). */
export function secretView(s: Secret, withData = false): Record<string, unknown> {
  return compact({
    name: s.name,
    mesh: s.mesh,
    uid: s.uid,
    type: s.type,
    version: s.version,
    stage: s.stage !== "" ? s.stage : undefined,
    etag: s.etag,
    owner: s.owner,
    description: s.description !== "" ? s.description : undefined,
    immutable: s.immutable,
    keys: s.keys,
    labels: nonEmpty(s.labels),
    annotations: nonEmpty(s.annotations),
    createTime: formatTime(s.createTime),
    updateTime: formatTime(s.updateTime),
    expireTime: formatTime(s.expireTime),
    data: withData ? Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, showValue(v)])) : undefined,
  });
}

export function grantView(g: Grant, now = Date.now()): Record<string, unknown> {
  return compact({
    mesh: g.mesh,
    name: g.name,
    subject: g.subject,
    permission: permissionName(g.permission),
    keys: g.keys,
    expireTime: formatTime(g.expireTime),
    expired: g.expireTime !== undefined && g.expireTime.getTime() <= now ? true : undefined,
    grantedBy: g.grantedBy,
    createTime: formatTime(g.createTime),
  });
}

export function consumerView(c: Consumer): Record<string, unknown> {
  return compact({
    sub: c.sub,
    roles: c.roles,
    revision: c.revision !== "" ? c.revision : undefined,
    since: formatTime(c.since),
    lastSeen: formatTime(c.lastSeen),
    replica: c.replica,
    consumerId: c.consumerId,
    appliedRevision: c.appliedRevision !== "" ? c.appliedRevision : undefined,
    appliedTime: formatTime(c.appliedTime),
    applied: c.applied.length > 0 ? c.applied.map((a) => ({ mesh: a.mesh, name: a.name, version: a.version })) : undefined,
  });
}

export function consumersTable(consumers: readonly Consumer[]): string {
  return renderTable(
    ["SUB", "ROLES", "REVISION", "APPLIED", "SINCE", "LAST_SEEN", "REPLICA"],
    consumers.map((c) => [
      c.sub,
      c.roles.join(",") || "-",
      c.revision.slice(0, 12) || "-",
      c.applied.map((a) => `v${a.version}`).join(",") || "-",
      formatTime(c.since) ?? "",
      formatTime(c.lastSeen) ?? "",
      c.replica,
    ]),
  );
}

export function auditView(e: AuditEvent): Record<string, unknown> {
  return compact({
    time: formatTime(e.time),
    requestId: e.requestId,
    method: e.method,
    sub: e.sub,
    mesh: e.mesh,
    name: e.name !== "" ? e.name : undefined,
    version: e.version !== 0 ? e.version : undefined,
    keys: e.keys.length > 0 ? e.keys : undefined,
    code: e.code,
    peer: e.peer,
    stage: e.stage !== "" ? e.stage : undefined,
  });
}

export function projectionView(p: Projection): Record<string, unknown> {
  return {
    revision: p.revision,
    sources: p.sources.map((s) => ({ mesh: s.mesh, name: s.name, version: s.version })),
    values: p.values.map((v) => ({ secret: v.secret, key: v.key, env: v.env, path: v.path, mode: `0${v.mode.toString(8).padStart(3, "0")}`, value: showValue(v.value) })),
  };
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? { base64: Buffer.from(value).toString("base64") } : value;
}

/** A document as YAML (no line folding; binary as !!binary) or indented JSON, newline-terminated. */
export function renderDoc(doc: unknown, format: DocFormat): string {
  if (format === "json") return `${JSON.stringify(doc, jsonReplacer, 2)}\n`;
  return stringify(doc, { lineWidth: 0, minContentWidth: 76, customTags: ["binary"] });
}

/** Control characters would break a table's alignment or drive the terminal. */
function cell(s: string): string {
  return s === "" ? "-" : s.replace(/\p{C}/gu, "?");
}

/** Left-aligned columns separated by three spaces; empty cells show as "-". */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cells = [headers.map((h) => h), ...rows.map((r) => r.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("   ")).join("\n") + "\n";
}

export function secretsTable(secrets: readonly Secret[]): string {
  return renderTable(
    ["NAME", "TYPE", "KEYS", "VERSION", "OWNER", "UPDATED", "EXPIRES"],
    secrets.map((s) => [s.name, s.type, String(s.keys.length), String(s.version), s.owner, formatTime(s.updateTime) ?? "", formatTime(s.expireTime) ?? ""]),
  );
}

export function grantsTable(grants: readonly Grant[], now = Date.now()): string {
  return renderTable(
    ["SUBJECT", "PERMISSION", "KEYS", "EXPIRES", "GRANTED_BY"],
    grants.map((g) => {
      const expires = g.expireTime === undefined ? "never" : `${formatTime(g.expireTime) ?? ""}${g.expireTime.getTime() <= now ? " (expired)" : ""}`;
      return [g.subject, permissionName(g.permission), g.keys.length > 0 ? g.keys.join(",") : "*", expires, g.grantedBy];
    }),
  );
}

export function auditTable(events: readonly AuditEvent[]): string {
  return renderTable(
    ["TIME", "METHOD", "CODE", "SUB", "MESH", "NAME", "VERSION", "STAGE", "KEYS", "PEER", "REQUEST_ID"],
    events.map((e) => [
      formatTime(e.time) ?? "",
      e.method,
      e.code,
      e.sub,
      e.mesh,
      e.name,
      e.version !== 0 ? String(e.version) : "",
      e.stage,
      e.keys.join(","),
      e.peer,
      e.requestId,
    ]),
  );
}

/** POSIX shell quoting: bare when only safe characters, else single-quoted. */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** One `NAME=value` line per checked pair (projected-env.ts), the value shell-quoted, so `eval "$(secretd …)"` or `set -a; . file` reproduce it. */
export function envLines(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([name, value]) => `${name}=${shellQuote(value)}\n`).join("");
}
