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
import { MAX_ITEMS, MAX_MAPPINGS, MAX_TOTAL_BYTES, projectedValuesCheck } from "./projection-bounds.js";
import { defaultEnvName, ENV_NAME_RULE, isEnvName, MAX_ENV_NAME_LENGTH } from "./env-names.js";
import { SecretdError, invalid } from "../errors.js";
import type { Principal } from "./principal.js";
import { requireUnexpired, scopeFor } from "./secrets.js";
import { validateDataKey, validateName, validateRevision } from "./validation.js";
import { parseStage, previousVersionOf } from "./stages.js";

export interface ProjectionResult {
  readonly values: ProjectedValue[];
  readonly sources: SecretRef[];
  readonly revision: string;
  /** The watch's id on WatchProjection messages (what AckProjection names); "" otherwise. */
  readonly consumerId: string;
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

/**
 * An explicit KeyMapping.env is checked with the request (it is the operator's text). A
 * derived name (env_prefix + key) is answered as it is, never judged here: whether it may
 * become an environment variable is decided where env is produced (src/client/projected-env.ts),
 * so a key name a writer chooses cannot make the server refuse a file-only consumer.
 */
function validateEnv(env: string, field: string): void {
  if (!isEnvName(env)) throw invalid(field, ENV_NAME_RULE);
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
    // A projection follows current (and previous for dual-credential clients); pending is GetSecret's only.
    parseStage(item.stage, `items[${i}].stage`, ["current", "previous"]);
    mappings += item.keys.length;
    if (mappings > MAX_MAPPINGS) throw invalid("items", `at most ${MAX_MAPPINGS} key mappings in all`);
    if (item.envPrefix.length > MAX_ENV_NAME_LENGTH || !/^[A-Za-z0-9_]*$/.test(item.envPrefix)) {
      throw invalid(`items[${i}].env_prefix`, `may only hold [A-Za-z0-9_] (at most ${MAX_ENV_NAME_LENGTH} characters)`);
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
  /** For names an item asks the previous stage of: that version's row (undefined: none kept). */
  readonly previous: ReadonlyMap<string, SecretWithVersion | undefined>;
  readonly now: number;
}

/** The stored rows a projection of `names` is made from, access not yet decided (see Secrets.source). */
export async function readSources(deps: ProjectionDeps, p: Principal, mesh: string, names: readonly string[]): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
  return deps.storage.readSecrets(scopeFor(p, mesh), names);
}

export async function readProjection(deps: ProjectionDeps, p: Principal, req: ProjectSecretsRequest): Promise<ProjectionRead> {
  const scope = scopeFor(p, req.mesh);
  validateRequest(req);
  const now = (deps.now ?? Date.now)();
  const names = [...new Set(req.items.map((i) => i.name))];
  // The values bound is checked on each row as it is read: past it, no more rows are read.
  const rows = await deps.storage.readSecrets(scope, names, projectedValuesCheck(p, req, now));
  const byName = new Map(names.map((n, i) => [n, rows[i]]));
  const previous = new Map<string, SecretWithVersion | undefined>();
  for (const name of new Set(req.items.filter((i) => i.stage === "previous").map((i) => i.name))) {
    const current = byName.get(name);
    const v = current ? await previousVersionOf(deps.storage, current.secret.uid) : undefined;
    const row = v === undefined ? undefined : await deps.storage.readSecret(scope, name, v);
    previous.set(name, row?.secret.uid === current?.secret.uid ? row : undefined);
  }
  return { projection: project(deps, p, req, scope.mesh, byName, previous, now), rows: byName, previous, now };
}

function project(
  deps: ProjectionDeps,
  p: Principal,
  req: ProjectSecretsRequest,
  mesh: string,
  byName: ReadonlyMap<string, SecretWithVersion | undefined>,
  previous: ReadonlyMap<string, SecretWithVersion | undefined>,
  now: number,
): ProjectionResult {

  const values: ProjectedValue[] = [];
  const sources: SecretRef[] = [];
  const sourced = new Set<string>();
  let total = 0;
  // Each source is opened once, however many items name it; its ciphertext size counts
  // against the cap before it is decrypted, so a small request cannot ask for a lot of
  // AES-GCM work.
  const opened = new Map<string, ReadonlyMap<string, Buffer>>();
  let decrypted = 0;

  for (const item of req.items) {
    const found = byName.get(item.name);
    const access = found ? accessTo(p, found.secret, found.grants, now) : undefined;
    if (!found || !found.version || !access || access.level === Level.NONE) {
      if (item.optional) continue;
      throw new SecretdError("NOT_FOUND", `secret "${item.name}" not found`);
    }
    requireLevel(access, Level.PROJECT, item.name);
    requireUnexpired(found.secret, now);
    // Access is decided on the secret; the previous stage's row only gives the version read.
    const isPrevious = item.stage === "previous";
    const version = isPrevious ? previous.get(item.name)?.version : found.version;
    if (version === undefined) {
      if (item.optional) continue;
      throw new SecretdError("NOT_FOUND", `secret "${item.name}" has no stage "previous" (no rotation keeps a previous version)`);
    }
    const source = isPrevious ? `${item.name}\0previous` : item.name;
    let data = opened.get(source);
    if (data === undefined) {
      decrypted += version.payload.byteLength;
      if (decrypted > MAX_TOTAL_BYTES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection sources exceed ${MAX_TOTAL_BYTES} bytes`);
      data = deps.open ? deps.open(found.secret, version) : openData(deps.keyring, found.secret, version, deps.plaintexts);
      opened.set(source, data);
    }
    const allowed = keysAt(access, Level.PROJECT);
    const mappings = item.keys.length > 0 ? item.keys : [...data.keys()].sort().map((key) => ({ key, env: "", path: "", mode: 0 }));

    for (const m of mappings) {
      const value = data.get(m.key);
      if (value === undefined) {
        if (item.optional) continue;
        throw new SecretdError("NOT_FOUND", `key "${m.key}" of secret "${item.name}" not found`);
      }
      if (item.keys.length === 0 && allowed !== undefined && !allowed.has(m.key)) continue; // "all keys" = all granted
      requireKeys(allowed, [m.key], item.name);
      // Two values with one env or one path are the concern of whoever produces env or
      // writes files (projected-env.ts, atomic-writer.ts), not of every consumer.
      const env = m.env || defaultEnvName(item.envPrefix, m.key);
      const path = m.path || `${item.name}/${m.key}`;
      total += value.length;
      if (total > MAX_TOTAL_BYTES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection exceeds ${MAX_TOTAL_BYTES} bytes`);
      values.push({ secret: item.name, key: m.key, env, path, mode: m.mode || DEFAULT_MODE, value });
    }
    if (!sourced.has(source)) {
      sourced.add(source);
      sources.push({ mesh, name: item.name, version: version.version });
    }
  }
  return { values, sources, revision: projectionRevision(sources, values), consumerId: "" };
}
