/**
 * The one configuration schema. Precedence: flags > environment > YAML file (--config)
 * > defaults. Read once at start, validated with messages that name the bad setting,
 * then frozen; nothing below this file reads process.env.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { YAMLError, parse as parseYaml } from "yaml";
import { parseDuration } from "./duration.js";
import { SecretdError } from "./errors.js";

/** A setting's raw value (flag, env, file or default) → its typed value; `fail` throws the error naming the setting. */
type Parser<T> = (v: string, fail: (problem: string) => never) => T;

export interface Setting<K extends string = string, T = unknown> {
  readonly key: K;
  readonly flag: string;
  readonly env: string;
  readonly default: string;
  readonly doc: string;
  /** A URL that may carry credentials (user:password@, query): masked when echoed. */
  readonly url?: true;
  /** A switch: the bare flag means "true". */
  readonly boolean?: true;
  readonly parse: Parser<T>;
}

/** One row of the table, its key and value types kept. */
function setting<K extends string, T>(s: Setting<K, T>): Setting<K, T> {
  return s;
}

// The parsers a row names. Numbers go through Number(), so " 5 " and "1e3" pass as before.

const text = (): Parser<string> => (v) => v;

/** "a, b,,c" → ["a", "b", "c"]. */
const list = (): Parser<string[]> => (v) => splitList(v);

/** "" = unset (undefined); anything else goes to `p`. */
const optional =
  <T>(p: Parser<T>): Parser<T | undefined> =>
  (v, fail) =>
    v === "" ? undefined : p(v, fail);

/** "" = unset (kept as ""); anything else goes to `p`. */
const orEmpty =
  (p: Parser<string>): Parser<string> =>
  (v, fail) =>
    v === "" ? "" : p(v, fail);

const matching =
  (re: RegExp, problem: string): Parser<string> =>
  (v, fail) =>
    re.test(v) ? v : fail(problem);

/** An absolute path; "" stays "" (the caller's default) unless required. */
const filePath =
  ({ required = false } = {}): Parser<string> =>
  (v, fail) => {
    if (v !== "") return path.resolve(v);
    return required ? fail("must not be empty") : "";
  };

const int =
  ({ min, max, says = `must be an integer from ${min} to ${max}` }: { min: number; max: number; says?: string }): Parser<number> =>
  (v, fail) => {
    const n = Number(v);
    return Number.isInteger(n) && n >= min && n <= max ? n : fail(says);
  };

/** auto = one per available CPU (still at most 64). */
const workerCount = (): Parser<number> => (v, fail) => {
  const n = v === "auto" ? os.availableParallelism() : Number(v);
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : fail(`"${v}" must be auto or an integer from 1 to 64`);
};

/** Seconds ("90s", "15m", "12h", "7d"); with `zero`, "0" is 0 (none, never). */
const duration =
  ({ zero = false, says }: { zero?: boolean; says: string }): Parser<number> =>
  (v, fail) => {
    if (zero && v === "0") return 0;
    try {
      return parseDuration(v);
    } catch {
      return fail(`"${v.slice(0, 32)}" is not a duration ${says}`);
    }
  };

/** Bytes (parseBytes), at least `min`. */
const bytes =
  ({ min = 0, like = "like 65536, 512KiB or 32MiB" }: { min?: number; like?: string }): Parser<number> =>
  (v, fail) => {
    const n = parseBytes(v);
    if (n !== undefined && n >= min) return n;
    return fail(`"${v.slice(0, 32)}" is not a size ${like}${min > 0 ? ` (at least ${min} byte${min === 1 ? "" : "s"})` : ""}`);
  };

const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (v, fail) => {
    const found = values.find((x) => x === v);
    return found ?? fail(`must be one of ${values.join(", ")}`);
  };

const bool = (): Parser<boolean> => (v, fail) => {
  const t = v.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(t)) return true;
  if (["false", "0", "no", "off", ""].includes(t)) return false;
  return fail(`"${v.slice(0, 32)}" is not true or false`);
};

/** host:port; [::1]:port for IPv6. */
const listen = (): Parser<{ host: string; port: number }> => (v, fail) => {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) return fail(`"${v}" is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
};

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const DEV_TOKEN_MODES = ["auto", "always", "never"] as const;
export type DevTokenMode = (typeof DEV_TOKEN_MODES)[number];

export const SETTINGS = [
  setting({ key: "listen", flag: "listen", env: "SECRETD_LISTEN", default: "127.0.0.1:50051", doc: "gRPC listen address host:port", parse: listen() }),
  setting({ key: "dataDir", flag: "data-dir", env: "SECRETD_DATA_DIR", default: "./data", doc: "directory for the SQLite database and dev keys", parse: filePath({ required: true }) }),
  setting({ key: "databaseUrl", flag: "database-url", env: "SECRETD_DATABASE_URL", default: "", doc: "empty: SQLite in the data dir; postgres://user@host:5432/db?sslmode=verify-full for PostgreSQL", url: true, parse: orEmpty(matching(/^postgres(ql)?:\/\//, "must be empty (SQLite) or a postgres:// URL")) }),
  setting({ key: "databasePoolSize", flag: "database-pool-size", env: "SECRETD_DATABASE_POOL_SIZE", default: "10", doc: "PostgreSQL: connections per server process", parse: int({ min: 1, max: 1000 }) }),
  setting({ key: "databaseStatementTimeout", flag: "database-statement-timeout", env: "SECRETD_DATABASE_STATEMENT_TIMEOUT", default: "5s", doc: "PostgreSQL: statement_timeout (0 = none)", parse: duration({ zero: true, says: "like 5s or 1m (0 = none)" }) }),
  setting({ key: "kekFile", flag: "kek-file", env: "SECRETD_KEK_FILE", default: "", doc: "KEK keyring (default <data-dir>/kek.json, created 0600 on first start)", parse: filePath() }),
  setting({ key: "jwtHs256SecretFile", flag: "jwt-hs256-secret-file", env: "SECRETD_JWT_HS256_SECRET_FILE", default: "", doc: "HS256 secret (default <data-dir>/jwt-dev.key when no other key source is set)", parse: text() }),
  setting({ key: "jwtJwksFile", flag: "jwt-jwks-file", env: "SECRETD_JWT_JWKS_FILE", default: "", doc: "JWKS file for RS256/ES256/EdDSA tokens", parse: text() }),
  setting({ key: "jwtJwksUrl", flag: "jwt-jwks-url", env: "SECRETD_JWT_JWKS_URL", default: "", doc: "JWKS URL for RS256/ES256/EdDSA tokens", url: true, parse: orEmpty(matching(/^https?:\/\//, "must be an http(s) URL")) }),
  setting({ key: "jwtOidcIssuer", flag: "jwt-oidc-issuer", env: "SECRETD_JWT_OIDC_ISSUER", default: "", doc: "OIDC issuer whose <issuer>/.well-known/openid-configuration names the jwks_uri (a Kubernetes API server's service-account issuer); needs --jwt-audience", url: true, parse: orEmpty(matching(/^https?:\/\/[^\s]+$/, "must be an http(s) URL")) }),
  setting({ key: "claimsMapping", flag: "claims-mapping", env: "SECRETD_CLAIMS_MAPPING", default: "", doc: "YAML file mapping an issuer's tokens to principals: tenant fixed or from a claim, mesh from a claim such as kubernetes.io.namespace, roles from a binding list", parse: filePath() }),
  setting({ key: "jwtIssuer", flag: "jwt-issuer", env: "SECRETD_JWT_ISSUER", default: "", doc: "required iss (unchecked when empty)", parse: text() }),
  setting({ key: "jwtAudience", flag: "jwt-audience", env: "SECRETD_JWT_AUDIENCE", default: "", doc: "required aud (unchecked when empty)", parse: text() }),
  setting({ key: "jwtAlgorithms", flag: "jwt-algorithms", env: "SECRETD_JWT_ALGORITHMS", default: "", doc: "allowed algorithms (default HS256 with a secret; RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA with a JWKS)", parse: optional(list()) }),
  setting({ key: "jwtMaxTtl", flag: "jwt-max-ttl", env: "SECRETD_JWT_MAX_TTL", default: "24h", doc: "longest token lifetime accepted (exp - iat; tokens without exp are refused)", parse: duration({ says: "such as 15m, 1h or 7d" }) }),
  setting({ key: "tenantClaim", flag: "tenant-claim", env: "SECRETD_TENANT_CLAIM", default: "tenant", doc: "JWT claim holding the tenant", parse: matching(/^[A-Za-z0-9_.:/-]{1,128}$/, "must be a claim name") }),
  setting({ key: "creatorRoles", flag: "creator-roles", env: "SECRETD_CREATOR_ROLES", default: "tenant-admin,data-admin,data-developer", doc: "roles that may create secrets", parse: list() }),
  setting({ key: "rotatorExec", flag: "rotator-exec", env: "SECRETD_ROTATOR_EXEC", default: "", doc: "RotateSecret rotator \"exec\": this executable gets the new values (JSON) on stdin and must exit 0 before they are stored; run again to retire the previous version (off when empty)", parse: text() }),
  setting({ key: "rotatorTimeout", flag: "rotator-timeout", env: "SECRETD_ROTATOR_TIMEOUT", default: "30s", doc: "how long a --rotator-exec run may take before it is killed and the rotation fails", parse: duration({ says: "like 30s or 2m" }) }),
  setting({ key: "maxVersions", flag: "max-versions", env: "SECRETD_MAX_VERSIONS", default: "10", doc: "versions kept readable per secret", parse: int({ min: 1, max: 1000 }) }),
  setting({ key: "tlsCert", flag: "tls-cert", env: "SECRETD_TLS_CERT", default: "", doc: "server certificate (PEM); plaintext when empty", parse: text() }),
  setting({ key: "tlsKey", flag: "tls-key", env: "SECRETD_TLS_KEY", default: "", doc: "server private key (PEM)", parse: text() }),
  setting({ key: "tlsClientCa", flag: "tls-client-ca", env: "SECRETD_TLS_CLIENT_CA", default: "", doc: "CA bundle: require client certificates signed by it", parse: text() }),
  setting({ key: "logLevel", flag: "log-level", env: "SECRETD_LOG_LEVEL", default: "info", doc: "trace, debug, info, warn, error, fatal or silent", parse: oneOf(LOG_LEVELS) }),
  setting({ key: "metricsListen", flag: "metrics-listen", env: "SECRETD_METRICS_LISTEN", default: "", doc: "Prometheus metrics address host:port, serving /metrics (off when empty)", parse: optional(listen()) }),
  setting({ key: "metricsTenantLabels", flag: "metrics-tenant-labels", env: "SECRETD_METRICS_TENANT_LABELS", default: "false", doc: "also count calls per tenant (tenant names become label values)", boolean: true, parse: bool() }),
  setting({ key: "auditRetention", flag: "audit-retention", env: "SECRETD_AUDIT_RETENTION", default: "90d", doc: "how long audit events are kept: 90s, 15m, 12h, 90d", parse: duration({ says: "like 90d, 12h or 15m" }) }),
  setting({ key: "auditFile", flag: "audit-file", env: "SECRETD_AUDIT_FILE", default: "", doc: "also append each audit event to this file as one JSON line (off when empty)", parse: filePath() }),
  setting({ key: "auditMaxBytes", flag: "audit-max-bytes", env: "SECRETD_AUDIT_MAX_BYTES", default: "4GiB", doc: "size bound on the stored audit trail, besides retention; oldest events deleted first: bytes or 512MiB, 4GiB, 1TiB (0 = none)", parse: bytes({ like: "like 512MiB, 4GiB or a number of bytes (0 = none)" }) }),
  setting({ key: "auditMaxEventsPerTenant", flag: "audit-max-events-per-tenant", env: "SECRETD_AUDIT_MAX_EVENTS_PER_TENANT", default: "50000", doc: "audit events one tenant may queue per second and server process; the rest are counted in one AuditEventsSuppressed event", parse: int({ min: 1, max: 10_000_000 }) }),
  setting({ key: "workers", flag: "workers", env: "SECRETD_WORKERS", default: "1", doc: "server processes on one port (node:cluster) over the same data; auto = one per available CPU", parse: workerCount() }),
  setting({ key: "valueCacheMb", flag: "value-cache-mb", env: "SECRETD_VALUE_CACHE_MB", default: "8", doc: "MiB per server process of decrypted values and encoded answers kept for hot reads, half each (0 = off; see SECURITY.md)", parse: int({ min: 0, max: 65536, says: "must be an integer from 0 (off) to 65536" }) }),
  setting({ key: "devToken", flag: "dev-token", env: "SECRETD_DEV_TOKEN", default: "auto", doc: "print a dev tenant-admin token at start (dev key only): auto = when the dev keys were just created or stderr is a terminal; always; never", parse: oneOf(DEV_TOKEN_MODES) }),
  setting({ key: "maxWatchesPerTenant", flag: "max-watches-per-tenant", env: "SECRETD_MAX_WATCHES_PER_TENANT", default: "10000", doc: "open WatchProjection streams per tenant and server process", parse: int({ min: 0, max: 10_000_000 }) }),
  setting({ key: "maxConnections", flag: "max-connections", env: "SECRETD_MAX_CONNECTIONS", default: "10000", doc: "open client connections per server process; more are closed at once (0 = no cap)", parse: int({ min: 0, max: 1_000_000, says: "must be an integer from 0 to 1000000 (0 = no cap)" }) }),
  setting({ key: "maxConnectionsPerPeer", flag: "max-connections-per-peer", env: "SECRETD_MAX_CONNECTIONS_PER_PEER", default: "1000", doc: "open client connections from one IP address per server process (0 = no cap; behind a proxy every client has its address)", parse: int({ min: 0, max: 1_000_000, says: "must be an integer from 0 to 1000000 (0 = no cap)" }) }),
  setting({ key: "writeStallTimeout", flag: "write-stall-timeout", env: "SECRETD_WRITE_STALL_TIMEOUT", default: "30s", doc: "a connection holding unread answers that drains less than --min-drain-rate (or less than all it held) over this long is closed (0 = never)", parse: duration({ zero: true, says: "like 30s or 2m (0 = never)" }) }),
  setting({ key: "minDrainRate", flag: "min-drain-rate", env: "SECRETD_MIN_DRAIN_RATE", default: "16KiB", doc: "bytes per second a connection holding unread answers must take (B, KiB, MiB)", parse: bytes({ min: 1 }) }),
  setting({ key: "maxUnreadBytesPerTenant", flag: "max-unread-bytes-per-tenant", env: "SECRETD_MAX_UNREAD_BYTES_PER_TENANT", default: "128MiB", doc: "answer bytes one tenant's clients may leave unread per server process; past it the tenant's new answers are RESOURCE_EXHAUSTED", parse: bytes({ min: 1 }) }),
  setting({ key: "maxUnreadBytesPerConnection", flag: "max-unread-bytes-per-connection", env: "SECRETD_MAX_UNREAD_BYTES_PER_CONNECTION", default: "32MiB", doc: "answer bytes one connection may leave unread; past it its new answers are RESOURCE_EXHAUSTED", parse: bytes({ min: 1 }) }),
  setting({ key: "maxRequestBytesPerConnection", flag: "max-request-bytes-per-connection", env: "SECRETD_MAX_REQUEST_BYTES_PER_CONNECTION", default: "32MiB", doc: "request-body bytes one connection may have buffered (unfinished bodies, before authentication); a stream past it is reset", parse: bytes({ min: 1 }) }),
  setting({ key: "maxRequestBytesPerPeer", flag: "max-request-bytes-per-peer", env: "SECRETD_MAX_REQUEST_BYTES_PER_PEER", default: "128MiB", doc: "request-body bytes one IP address may have buffered over all its connections, per server process", parse: bytes({ min: 1 }) }),
  setting({ key: "requestBodyTimeout", flag: "request-body-timeout", env: "SECRETD_REQUEST_BODY_TIMEOUT", default: "30s", doc: "a request body not complete this long after its headers is reset (0 = never)", parse: duration({ zero: true, says: "like 30s or 2m (0 = never)" }) }),
] as const;

type SettingKey = (typeof SETTINGS)[number]["key"];
type RawSettings = Record<SettingKey, string>;

export interface Config {
  readonly listen: { readonly host: string; readonly port: number };
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly database: { readonly poolSize: number; readonly statementTimeoutMs: number };
  readonly kekFile: string;
  /** True when kekFile is the default path, which may be created on first start. */
  readonly kekFileIsDefault: boolean;
  readonly jwt: {
    readonly hs256SecretFile: string;
    /** True when the HS256 secret is the dev key in the data dir, created if missing. */
    readonly hs256IsDevKey: boolean;
    readonly jwksFile: string;
    readonly jwksUrl: string;
    /** "" = none. */
    readonly oidcIssuer: string;
    /** The claims-mapping file; "" = none. */
    readonly claimsMapping: string;
    readonly issuer: string;
    readonly audience: string;
    readonly algorithms: readonly string[];
    /** Longest accepted exp - iat, in seconds. */
    readonly maxTtlSec: number;
    readonly tenantClaim: string;
  };
  readonly creatorRoles: readonly string[];
  readonly maxVersions: number;
  /** RotateSecret's exec rotator: an executable path ("" = none) and its time bound. */
  readonly rotator: { readonly exec: string; readonly timeoutMs: number };
  readonly tls: { readonly cert: string; readonly key: string; readonly clientCa: string } | undefined;
  readonly logLevel: string;
  /** Where /metrics is served; undefined = off. */
  readonly metricsListen: { readonly host: string; readonly port: number } | undefined;
  /** Whether metrics may carry tenant names as label values. */
  readonly metricsTenantLabels: boolean;
  readonly audit: {
    /** Events older than this are pruned. */
    readonly retentionMs: number;
    /** JSON-lines copy of each event; "" = off. */
    readonly file: string;
    /** Bound on the stored trail's size, oldest first; 0 = none. */
    readonly maxBytes: number;
    /** Events one tenant may queue per flush window (a second) and process. */
    readonly maxEventsPerTenant: number;
  };
  readonly maxWatchesPerTenant: number;
  /** Server processes (1 = this process serves; more: a primary forks that many workers). */
  readonly workers: number;
  /** Per server process (transport/grpc/adapter/connection-guard.ts); 0 = no cap. */
  readonly connections: { readonly max: number; readonly maxPerPeer: number; readonly writeStallMs: number };
  /** The resource ledger's bounds (transport/grpc/resource-ledger.ts), per server process; bytes and ms. */
  readonly resources: {
    readonly requestBytesPerConnection: number;
    readonly requestBytesPerPeer: number;
    readonly requestBodyTimeoutMs: number;
    readonly unreadBytesPerTenant: number;
    readonly unreadBytesPerConnection: number;
    readonly minDrainRate: number;
  };
  /** Bytes of decrypted payloads kept across calls (PlaintextCache); 0 = off. */
  readonly valueCacheBytes: number;
  /** When serve prints the dev token banner (with the dev signing key only). */
  readonly devToken: DevTokenMode;
}

const HS_ALGS = ["HS256"];
const JWKS_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

function bad(setting: string, problem: string): SecretdError {
  const s = SETTINGS.find((x) => x.key === setting);
  const name = s ? `--${s.flag} / ${s.env}` : setting;
  return new SecretdError("INVALID_ARGUMENT", `invalid configuration ${name}: ${problem}`);
}

function scalarSetting(file: string, key: string, v: unknown): string {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "string" || typeof x === "number")) return v.join(",");
  throw new SecretdError("INVALID_ARGUMENT", `invalid configuration ${key} in --config ${file}: must be a string, a number, a boolean or a list of strings`);
}

/** The settings a YAML file sets, by key. Keys are the camelCase setting names (SPEC §7). */
function readYaml(file: string): Partial<Record<keyof RawSettings, string>> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `invalid configuration --config ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // The parser's message quotes the offending line, which may hold a secret: give only its position.
    const pos = err instanceof YAMLError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : "";
    throw new SecretdError("INVALID_ARGUMENT", `invalid configuration --config ${file}: not valid YAML${pos}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new SecretdError("INVALID_ARGUMENT", `invalid configuration --config ${file}: expected a mapping of setting names`);
  }
  const out: Partial<Record<keyof RawSettings, string>> = {};
  for (const [k, v] of Object.entries(doc)) {
    const s = SETTINGS.find((x) => x.key === k);
    if (!s) {
      const kebab = SETTINGS.find((x) => x.flag === k);
      const hint = kebab ? ` (keys are camelCase: ${kebab.key})` : "";
      throw new SecretdError("INVALID_ARGUMENT", `invalid configuration --config ${file}: unknown setting "${k.slice(0, 64)}"${hint}`);
    }
    out[s.key] = scalarSetting(file, s.key, v);
  }
  return out;
}

/** "a, b,,c" → ["a", "b", "c"]: comma-separated settings and flags. */
export function splitList(v: string): string[] {
  return v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * flags: values given on the command line, by setting key (camelCase), plus `config`.
 * env: the process environment.
 */
export type ConfigFlags = Partial<Record<keyof RawSettings | "config", string>>;

export type SettingSource = "flag" | "env" | "file" | "default";

/** One setting as it ended up, and where its value came from. */
export interface EffectiveSetting {
  readonly key: string;
  readonly flag: string;
  readonly env: string;
  readonly value: string;
  readonly source: SettingSource;
}

function resolveSettings(flags: ConfigFlags, env: NodeJS.ProcessEnv): { raw: RawSettings; effective: EffectiveSetting[] } {
  const configFile = flags.config ?? env.SECRETD_CONFIG ?? "";
  const fromFile = configFile ? readYaml(configFile) : {};
  const raw = {} as RawSettings;
  const effective: EffectiveSetting[] = [];
  for (const s of SETTINGS) {
    const [value, source]: [string, SettingSource] =
      flags[s.key] !== undefined ? [flags[s.key]!, "flag"]
      : env[s.env] !== undefined ? [env[s.env]!, "env"]
      : fromFile[s.key] !== undefined ? [fromFile[s.key]!, "file"]
      : [s.default, "default"];
    raw[s.key] = value;
    effective.push({ key: s.key, flag: s.flag, env: s.env, value: s.url ? maskUrl(value) : value, source });
  }
  if (configFile !== "") effective.unshift({ key: "config", flag: "config", env: "SECRETD_CONFIG", value: configFile, source: flags.config !== undefined ? "flag" : "env" });
  return { raw, effective };
}

/** A URL with its password and query replaced by "***", so it can be shown. */
export function maskUrl(value: string): string {
  if (value === "") return value;
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return "***";
  }
  if (u.password !== "") u.password = "***";
  if (u.search !== "") u.search = "?***";
  return u.toString();
}

/**
 * Every setting with its effective value and source, URL credentials masked: what
 * `secretd doctor` echoes. Validates nothing beyond the YAML file itself.
 */
export function effectiveSettings(flags: ConfigFlags, env: NodeJS.ProcessEnv): EffectiveSetting[] {
  return resolveSettings(flags, env).effective;
}

/** Each setting's value as its row's parser returns it. */
type Parsed = { [S in (typeof SETTINGS)[number] as S["key"]]: ReturnType<S["parse"]> };

/** Every row through its parser; the first bad value (in table order) fails naming its flag and env. */
function parseSettings(raw: RawSettings): Parsed {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    out[s.key] = s.parse(raw[s.key], (problem) => {
      throw bad(s.key, problem);
    });
  }
  return out as Parsed;
}

export function loadConfig(flags: ConfigFlags, env: NodeJS.ProcessEnv): Config {
  const v = parseSettings(resolveSettings(flags, env).raw);

  // The checks across settings.
  const hasJwks = v.jwtJwksFile !== "" || v.jwtJwksUrl !== "" || v.jwtOidcIssuer !== "";
  const hs256IsDevKey = v.jwtHs256SecretFile === "" && !hasJwks;
  const hs256SecretFile = hs256IsDevKey ? path.join(v.dataDir, "jwt-dev.key") : v.jwtHs256SecretFile;
  const algorithms = v.jwtAlgorithms ?? [...(hs256SecretFile ? HS_ALGS : []), ...(hasJwks ? JWKS_ALGS : [])];
  for (const a of algorithms) {
    if (![...HS_ALGS, ...JWKS_ALGS].includes(a)) throw bad("jwtAlgorithms", `unsupported algorithm "${a}"`);
    if (HS_ALGS.includes(a) && !hs256SecretFile) throw bad("jwtAlgorithms", `${a} needs --jwt-hs256-secret-file`);
    if (JWKS_ALGS.includes(a) && !hasJwks) throw bad("jwtAlgorithms", `${a} needs --jwt-jwks-file, --jwt-jwks-url or --jwt-oidc-issuer`);
  }
  if (algorithms.length === 0) throw bad("jwtAlgorithms", "no algorithm allowed");
  if (v.jwtOidcIssuer !== "" && v.jwtAudience === "") throw bad("jwtAudience", "required with --jwt-oidc-issuer (an issuer such as a Kubernetes API server mints tokens for many audiences)");
  if ((v.tlsCert === "") !== (v.tlsKey === "")) throw bad(v.tlsCert ? "tlsKey" : "tlsCert", "--tls-cert and --tls-key go together");
  if (v.tlsClientCa !== "" && v.tlsCert === "") throw bad("tlsClientCa", "needs --tls-cert and --tls-key");

  const config: Config = {
    listen: v.listen,
    dataDir: v.dataDir,
    databaseUrl: v.databaseUrl,
    database: { poolSize: v.databasePoolSize, statementTimeoutMs: v.databaseStatementTimeout * 1000 },
    kekFile: v.kekFile === "" ? path.join(v.dataDir, "kek.json") : v.kekFile,
    kekFileIsDefault: v.kekFile === "",
    jwt: {
      hs256SecretFile,
      hs256IsDevKey,
      jwksFile: v.jwtJwksFile,
      jwksUrl: v.jwtJwksUrl,
      oidcIssuer: v.jwtOidcIssuer,
      claimsMapping: v.claimsMapping,
      issuer: v.jwtIssuer,
      audience: v.jwtAudience,
      algorithms,
      maxTtlSec: v.jwtMaxTtl,
      tenantClaim: v.tenantClaim,
    },
    creatorRoles: v.creatorRoles,
    maxVersions: v.maxVersions,
    rotator: { exec: v.rotatorExec, timeoutMs: v.rotatorTimeout * 1000 },
    tls: v.tlsCert === "" ? undefined : { cert: v.tlsCert, key: v.tlsKey, clientCa: v.tlsClientCa },
    logLevel: v.logLevel,
    metricsListen: v.metricsListen,
    metricsTenantLabels: v.metricsTenantLabels,
    audit: {
      retentionMs: v.auditRetention * 1000,
      file: v.auditFile,
      maxBytes: v.auditMaxBytes,
      maxEventsPerTenant: v.auditMaxEventsPerTenant,
    },
    maxWatchesPerTenant: v.maxWatchesPerTenant,
    workers: v.workers,
    connections: { max: v.maxConnections, maxPerPeer: v.maxConnectionsPerPeer, writeStallMs: v.writeStallTimeout * 1000 },
    resources: {
      requestBytesPerConnection: v.maxRequestBytesPerConnection,
      requestBytesPerPeer: v.maxRequestBytesPerPeer,
      requestBodyTimeoutMs: v.requestBodyTimeout * 1000,
      unreadBytesPerTenant: v.maxUnreadBytesPerTenant,
      unreadBytesPerConnection: v.maxUnreadBytesPerConnection,
      minDrainRate: v.minDrainRate,
    },
    valueCacheBytes: v.valueCacheMb * 1024 * 1024,
    devToken: v.devToken,
  };
  return deepFreeze(config);
}

const SIZE_UNITS: Record<string, number> = { "": 1, b: 1, kib: 1024, mib: 1024 * 1024, gib: 1024 ** 3, tib: 1024 ** 4 };

/** "65536", "512KiB", "32MiB", "1GiB" → bytes; undefined when it is none of these. */
export function parseBytes(v: string): number | undefined {
  const m = /^(\d{1,12})\s*([A-Za-z]*)$/.exec(v.trim());
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Number(m[1]) * unit;
  return Number.isSafeInteger(n) ? n : undefined;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
