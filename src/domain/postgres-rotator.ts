/**
 * The built-in PostgreSQL rotator (#30 item 5), AWS's "alternating users": the secret
 * holds `username`/`password` of one of two roles; a rotation gives the OTHER role a
 * fresh server-generated password (`ALTER ROLE … WITH LOGIN PASSWORD …`) and makes that
 * the new version; retiring the previous version sets its role NOLOGIN (its open
 * connections stay; new logins fail), and the next rotation logs it in again with a new
 * password. Configuration is in the rotated secret's annotations (ROTATOR_ANNOTATIONS):
 * the two roles and the name of the admin secret (keys host, port, dbname, username,
 * password, optional sslmode) in the same tenant and mesh, which the server reads itself.
 * Each step opens one short-lived admin connection, bounded by --rotator-timeout
 * (connect, statement and query). Identifiers are quoted with escapeIdentifier and the
 * password with escapeLiteral; no statement, value or server message is logged or
 * recorded: an outcome names the step and SQLSTATE only. An unreachable target is
 * transient (the step is retried with backoff); any SQL error refuses. Both steps are
 * idempotent (ALTER ROLE of the same password / NOLOGIN again).
 */
import pg from "pg";
import { SecretdError, invalid } from "../errors.js";
import type { KeyringSource } from "../crypto/keyring.js";
import type { Storage } from "../storage/storage.js";
import { openData } from "./barrier.js";
import type { Rotator, RotatorOutcome } from "./exec-rotator.js";
import { validateName } from "./validation.js";

export const ROTATOR_ANNOTATION_PREFIX = "rotator.secretd.io/";
export const ROTATOR_ANNOTATIONS = {
  roles: `${ROTATOR_ANNOTATION_PREFIX}postgres-roles`,
  admin: `${ROTATOR_ANNOTATION_PREFIX}postgres-admin-secret`,
} as const;

/** A role name the rotator accepts: an ordinary unquoted PostgreSQL identifier. */
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresRotatorConfig {
  readonly roles: readonly [string, string];
  readonly admin: string;
}

/** Checks the rotator annotations a user sets (create / update): only the known keys, well formed. */
export function validateRotatorAnnotations(annotations: Readonly<Record<string, string>>): void {
  const known = new Set<string>(Object.values(ROTATOR_ANNOTATIONS));
  for (const k of Object.keys(annotations)) {
    if (k.startsWith(ROTATOR_ANNOTATION_PREFIX) && !known.has(k)) throw invalid(`annotations["${k}"]`, `unknown rotator annotation (allowed: ${[...known].join(", ")})`);
  }
  const roles = annotations[ROTATOR_ANNOTATIONS.roles];
  if (roles !== undefined) rolesOf(roles);
  const admin = annotations[ROTATOR_ANNOTATIONS.admin];
  if (admin !== undefined) validateName(admin, `annotations["${ROTATOR_ANNOTATIONS.admin}"]`);
}

function rolesOf(v: string): readonly [string, string] {
  const field = `annotations["${ROTATOR_ANNOTATIONS.roles}"]`;
  const parts = v.split(",").map((s) => s.trim());
  if (parts.length !== 2 || !parts.every((p) => ROLE.test(p))) throw invalid(field, "must name two roles, like app_a,app_b (lower-case letters, digits, _)");
  if (parts[0] === parts[1]) throw invalid(field, "must name two different roles");
  return [parts[0]!, parts[1]!];
}

/** The rotator's configuration of a secret about to be rotated: INVALID_ARGUMENT when missing or malformed. */
export function postgresConfigOf(annotations: Readonly<Record<string, string>>): PostgresRotatorConfig {
  validateRotatorAnnotations(annotations);
  const roles = annotations[ROTATOR_ANNOTATIONS.roles];
  const admin = annotations[ROTATOR_ANNOTATIONS.admin];
  if (roles === undefined || admin === undefined) throw invalid("rotator", `the postgres rotator needs the annotations ${ROTATOR_ANNOTATIONS.roles} and ${ROTATOR_ANNOTATIONS.admin}`);
  return { roles: rolesOf(roles), admin };
}

/** The role the next version logs in as: the other of the two than the current `username`. */
export function otherRole(config: PostgresRotatorConfig, current: string | undefined): string {
  const [a, b] = config.roles;
  if (current === a) return b;
  if (current === b) return a;
  throw new SecretdError("FAILED_PRECONDITION", `the secret's username must be one of the rotator's roles (${a}, ${b})`);
}

/** Node errors of a connection that never reached the server, and PostgreSQL's "cannot connect now" classes. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);

function outcomeOf(step: string, err: unknown): RotatorOutcome {
  const code = (err as { code?: unknown }).code;
  const c = typeof code === "string" ? code : "";
  const message = err instanceof Error ? err.message : "";
  // Bounded by --rotator-timeout: a hanging step refuses (recorded, the secret unchanged).
  if (c === "57014" || /timeout/i.test(message)) return { ok: false, reason: `${step} exceeded --rotator-timeout` };
  if (UNREACHABLE.has(c) || c.startsWith("08") || c === "57P01" || c === "57P03" || /Connection terminated/i.test(message)) {
    return { ok: false, reason: `the PostgreSQL target went away during ${step} (${c === "" ? "connection lost" : c})`, transient: true };
  }
  return { ok: false, reason: `PostgreSQL refused ${step} (SQLSTATE ${c === "" ? "unknown" : c})` };
}

/** The postgres rotator, reading each secret's admin secret from `storage` (same tenant and mesh). */
export function postgresRotator(storage: Storage, keyring: KeyringSource, timeoutMs: number): Rotator {
  return async (action, t, values) => {
    const config = postgresConfigOf(t.annotations ?? {});
    const username = values.get("username")?.toString();
    if (username === undefined || !config.roles.includes(username)) return { ok: false, reason: "the version's username is not one of the rotator's roles" };
    const found = await storage.readSecret({ tenant: t.tenant, mesh: t.mesh }, config.admin, 0, true);
    if (found?.version === undefined) return { ok: false, reason: `the admin secret "${config.admin}" does not exist`, transient: true };
    const admin = openData(keyring, found.secret, found.version);
    const str = (k: string): string | undefined => admin.get(k)?.toString();
    const sslmode = str("sslmode") ?? "disable";
    const client = new pg.Client({
      host: str("host"),
      port: Number(str("port") ?? "5432"),
      database: str("dbname"),
      user: str("username"),
      password: str("password"),
      ssl: sslmode === "disable" ? false : sslmode === "require" ? { rejectUnauthorized: false } : true,
      connectionTimeoutMillis: timeoutMs,
      statement_timeout: timeoutMs,
      query_timeout: timeoutMs,
    });
    for (const v of admin.values()) v.fill(0);
    // A connection's late error (the server going away) must not fail the process.
    client.on("error", () => undefined);
    const step = action === "rotate" ? `ALTER ROLE ${username} ... PASSWORD` : `ALTER ROLE ${username} NOLOGIN`;
    try {
      await client.connect();
    } catch (err) {
      const c = (err as { code?: unknown }).code;
      // A refused login of the admin is the operator's to fix, not a passing fault.
      if (c === "28P01" || c === "28000" || c === "3D000") return { ok: false, reason: `the admin connection was refused (SQLSTATE ${String(c)})` };
      return { ok: false, reason: `the PostgreSQL target is unreachable (${typeof c === "string" ? c : "connection failed or timed out"})`, transient: true };
    }
    try {
      const role = client.escapeIdentifier(username);
      if (action === "rotate") {
        const password = values.get("password")?.toString();
        if (password === undefined || password === "") return { ok: false, reason: "the version has no password" };
        await client.query(`ALTER ROLE ${role} WITH LOGIN PASSWORD ${client.escapeLiteral(password)}`);
      } else {
        await client.query(`ALTER ROLE ${role} WITH NOLOGIN`);
      }
      return { ok: true };
    } catch (err) {
      return outcomeOf(step, err);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}
