/**
 * ProjectSecrets: values of several secrets selected and mapped to env names, file
 * paths and modes for a runtime, all read from one storage transaction. The revision
 * is a SHA-256 over a canonical encoding of sources and values, so the same input
 * always yields the same revision and any change of a value yields another.
 */
import { createHash } from "node:crypto";
import { lengthPrefixed, type Part } from "../crypto/length-prefixed.js";
import type { KeyringSource } from "../crypto/keyring.js";
import type { PlaintextCache } from "../crypto/plaintext-cache.js";
import type { ProjectSecretsRequest, ProjectedValue, SecretRef } from "../gen/secrets/v1/secrets.js";
import type { SecretRow, SecretWithVersion, Storage, VersionRow } from "../storage/storage.js";
import { accessTo, keysAt, Level, requireKeys, requireLevel } from "./access.js";
import { openData } from "./barrier.js";
import { checkProjectedValues, MAX_ITEMS, MAX_MAPPINGS, MAX_TOTAL_BYTES } from "./projection-bounds.js";
import { SecretdError, invalid } from "./errors.js";
import type { Principal } from "./principal.js";
import { requireUnexpired, scopeFor } from "./secrets.js";
import { validateDataKey, validateName, validateRevision } from "./validation.js";

export interface ProjectionResult {
  readonly values: ProjectedValue[];
  readonly sources: SecretRef[];
  readonly revision: string;
}

export interface ProjectionDeps {
  readonly storage: Storage;
  /** Asked per call: a KEK rotation may change it while the server runs. */
  readonly keyring: KeyringSource;
  /** Opened payloads kept across calls (see PlaintextCache); none when absent. */
  readonly plaintexts?: PlaintextCache;
  readonly now?: () => number;
  /** Opens a version's values (default: openData); WatchProjection shares one opening among the watchers of a fan-out. */
  readonly open?: (row: SecretRow, version: VersionRow) => Map<string, Buffer>;
}

const DEFAULT_MODE = 0o400;

export function defaultEnvName(prefix: string, key: string): string {
  return prefix + key.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

/** POSIX portable environment names: no newline, '=' or NUL can reach a child's environ. */
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_ENV_NAME_LENGTH = 256;
const ENV_NAME_RULE = "must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)";

/**
 * Variables that change how a loader, shell or runtime starts a program. A default name
 * (env_prefix + key) may not be one of them, so a data key called "path" or
 * "ld_preload" cannot silently become PATH or LD_PRELOAD of `secretd run`'s child; a
 * KeyMapping.env that names one explicitly is the caller's stated intent and is kept.
 */
const DENIED_ENV_NAMES = new Set([
  "PATH", "IFS", "ENV", "BASH_ENV", "SHELL", "SHELLOPTS", "BASHOPTS", "CDPATH", "GLOBIGNORE", "PS4", "PROMPT_COMMAND",
  "HOME", "TMPDIR", "LANG", "LC_ALL", "GCONV_PATH", "NLSPATH", "LOCPATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS",
  "NODE_OPTIONS", "NODE_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "PERL5LIB", "PERL5OPT", "PERLLIB",
  "RUBYLIB", "RUBYOPT", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "SSL_CERT_FILE", "SSL_CERT_DIR",
]);
const DENIED_ENV_PREFIXES = ["LD_", "DYLD_", "BASH_FUNC_", "MALLOC_", "GLIBC_"];

export function isDeniedDefaultEnv(name: string): boolean {
  return DENIED_ENV_NAMES.has(name) || DENIED_ENV_PREFIXES.some((p) => name.startsWith(p));
}

function validateEnv(env: string, field: string): void {
  if (env.length > MAX_ENV_NAME_LENGTH || !ENV_NAME_RE.test(env)) throw invalid(field, ENV_NAME_RULE);
}

/** The env name of one value: the explicit one, or a default that is portable and not denied. */
function envNameOf(explicit: string, prefix: string, key: string, field: string): string {
  if (explicit !== "") return explicit;
  const env = defaultEnvName(prefix, key);
  if (env.length > MAX_ENV_NAME_LENGTH || !ENV_NAME_RE.test(env)) {
    throw invalid(`${field}.env`, `the default name "${env.slice(0, 80)}" (env_prefix + key) ${ENV_NAME_RULE}: set env explicitly`);
  }
  if (isDeniedDefaultEnv(env)) {
    throw invalid(`${field}.env`, `the default name "${env}" is a loader or shell variable: name it explicitly in env to use it`);
  }
  return env;
}

function validatePath(path: string, field: string): void {
  if (path.includes("\\")) throw invalid(field, "must not contain a backslash");
  if (/\p{Cc}/u.test(path)) throw invalid(field, "must not contain control characters");
  if (path.startsWith("/")) throw invalid(field, "must be relative");
  const parts = path.split("/");
  if (parts.some((s) => s === "" || s.startsWith(".."))) {
    throw invalid(field, "must not contain '..', a segment starting with '..', or empty segments");
  }
  if (path.includes("\0") || path.length > 4096) throw invalid(field, "is not a valid path");
}

/** The request's own checks (no storage read): WatchProjection runs them before it keeps a watch. */
export function validateRequest(req: ProjectSecretsRequest): void {
  validateRevision(req.knownRevision, "known_revision");
  if (req.items.length === 0) throw invalid("items", "at least one item is required");
  if (req.items.length > MAX_ITEMS) throw invalid("items", `at most ${MAX_ITEMS} items`);
  let mappings = 0;
  req.items.forEach((item, i) => {
    validateName(item.name, `items[${i}].name`);
    mappings += item.keys.length;
    if (mappings > MAX_MAPPINGS) throw invalid("items", `at most ${MAX_MAPPINGS} key mappings in all`);
    if (item.envPrefix !== "" && !/^[A-Za-z0-9_]*$/.test(item.envPrefix)) {
      throw invalid(`items[${i}].env_prefix`, "may only hold [A-Za-z0-9_]");
    }
    item.keys.forEach((k, j) => {
      const f = `items[${i}].keys[${j}]`;
      validateDataKey(k.key, `${f}.key`);
      if (k.env !== "") validateEnv(k.env, `${f}.env`);
      if (k.path !== "") validatePath(k.path, `${f}.path`);
      if (k.mode > 0o777) throw invalid(`${f}.mode`, "must be a file mode no greater than 0777");
    });
  });
}


export function projectionRevision(sources: readonly SecretRef[], values: readonly ProjectedValue[]): string {
  const parts: Part[] = ["secretd-projection-v1", sources.length, values.length];
  for (const s of sources) parts.push(s.mesh, s.name, s.version);
  for (const v of values) parts.push(v.secret, v.key, v.env, v.path, v.mode, v.value);
  return createHash("sha256").update(lengthPrefixed(parts)).digest("hex");
}

export async function projectSecrets(deps: ProjectionDeps, p: Principal, req: ProjectSecretsRequest): Promise<ProjectionResult> {
  return (await readProjection(deps, p, req)).projection;
}

/** A projection with the rows it was made from (WatchProjection needs their uids and expiry times). */
export interface ProjectionRead {
  readonly projection: ProjectionResult;
  /** The rows of every item's secret, by name (undefined: missing). */
  readonly rows: ReadonlyMap<string, SecretWithVersion | undefined>;
  readonly now: number;
}

export async function readProjection(deps: ProjectionDeps, p: Principal, req: ProjectSecretsRequest): Promise<ProjectionRead> {
  const scope = scopeFor(p, req.mesh);
  validateRequest(req);
  const now = (deps.now ?? Date.now)();
  const names = [...new Set(req.items.map((i) => i.name))];
  const rows = await deps.storage.readSecrets(scope, names);
  const byName = new Map(names.map((n, i) => [n, rows[i]]));
  checkProjectedValues(p, req, byName, now);
  return { projection: project(deps, p, req, scope.mesh, byName, now), rows: byName, now };
}

function project(
  deps: ProjectionDeps,
  p: Principal,
  req: ProjectSecretsRequest,
  mesh: string,
  byName: ReadonlyMap<string, SecretWithVersion | undefined>,
  now: number,
): ProjectionResult {

  const values: ProjectedValue[] = [];
  const sources: SecretRef[] = [];
  const sourced = new Set<string>();
  const envs = new Map<string, string>();
  const paths = new Map<string, string>();
  let total = 0;
  // Each source is opened once, however many items name it; its ciphertext size counts
  // against the cap before it is decrypted, so a small request cannot ask for a lot of
  // AES-GCM work.
  const opened = new Map<string, ReadonlyMap<string, Buffer>>();
  let decrypted = 0;

  for (const [i, item] of req.items.entries()) {
    const found = byName.get(item.name);
    const access = found ? accessTo(p, found.secret, found.grants, now) : undefined;
    if (!found || !found.version || !access || access.level === Level.NONE) {
      if (item.optional) continue;
      throw new SecretdError("NOT_FOUND", `secret "${item.name}" not found`);
    }
    requireLevel(access, Level.PROJECT, item.name);
    requireUnexpired(found.secret, now);
    let data = opened.get(item.name);
    if (data === undefined) {
      decrypted += found.version.payload.byteLength;
      if (decrypted > MAX_TOTAL_BYTES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection sources exceed ${MAX_TOTAL_BYTES} bytes`);
      data = deps.open ? deps.open(found.secret, found.version) : openData(deps.keyring, found.secret, found.version, deps.plaintexts);
      opened.set(item.name, data);
    }
    const allowed = keysAt(access, Level.PROJECT);
    const mappings = item.keys.length > 0 ? item.keys : [...data.keys()].sort().map((key) => ({ key, env: "", path: "", mode: 0 }));

    for (const [j, m] of mappings.entries()) {
      const value = data.get(m.key);
      if (value === undefined) {
        if (item.optional) continue;
        throw new SecretdError("NOT_FOUND", `key "${m.key}" of secret "${item.name}" not found`);
      }
      if (item.keys.length === 0 && allowed !== undefined && !allowed.has(m.key)) continue; // "all keys" = all granted
      requireKeys(allowed, [m.key], item.name);
      const field = `items[${i}].keys[${j}]`;
      const env = envNameOf(m.env, item.envPrefix, m.key, field);
      const path = m.path || `${item.name}/${m.key}`;
      if (envs.has(env)) throw invalid(`${field}.env`, `"${env}" is also produced by ${envs.get(env)}`);
      if (paths.has(path)) throw invalid(`${field}.path`, `"${path}" is also produced by ${paths.get(path)}`);
      envs.set(env, field);
      paths.set(path, field);
      total += value.length;
      if (total > MAX_TOTAL_BYTES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection exceeds ${MAX_TOTAL_BYTES} bytes`);
      values.push({ secret: item.name, key: m.key, env, path, mode: m.mode || DEFAULT_MODE, value });
    }
    if (!sourced.has(item.name)) {
      sourced.add(item.name);
      sources.push({ mesh, name: item.name, version: found.secret.version });
    }
  }
  return { values, sources, revision: projectionRevision(sources, values) };
}
