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

interface Setting {
  readonly key: keyof RawSettings;
  readonly flag: string;
  readonly env: string;
  readonly default: string;
  readonly doc: string;
  /** A URL that may carry credentials (user:password@, query): masked when echoed. */
  readonly url?: true;
  /** A switch: the bare flag means "true". */
  readonly boolean?: true;
}

type RawSettings = {
  listen: string;
  dataDir: string;
  databaseUrl: string;
  databasePoolSize: string;
  databaseStatementTimeout: string;
  kekFile: string;
  jwtHs256SecretFile: string;
  jwtJwksFile: string;
  jwtJwksUrl: string;
  jwtIssuer: string;
  jwtAudience: string;
  jwtAlgorithms: string;
  jwtMaxTtl: string;
  tenantClaim: string;
  creatorRoles: string;
  maxVersions: string;
  tlsCert: string;
  tlsKey: string;
  tlsClientCa: string;
  logLevel: string;
  metricsListen: string;
  metricsTenantLabels: string;
  auditRetention: string;
  auditFile: string;
  auditMaxBytes: string;
  auditMaxEventsPerTenant: string;
  maxWatchesPerTenant: string;
  workers: string;
  maxConnections: string;
  maxConnectionsPerPeer: string;
  writeStallTimeout: string;
  maxRequestBytesPerConnection: string;
  maxRequestBytesPerPeer: string;
  requestBodyTimeout: string;
  maxUnreadBytesPerTenant: string;
  maxUnreadBytesPerConnection: string;
  minDrainRate: string;
  valueCacheMb: string;
  devToken: string;
};

export const SETTINGS: readonly Setting[] = [
  { key: "listen", flag: "listen", env: "SECRETD_LISTEN", default: "127.0.0.1:50051", doc: "gRPC listen address host:port" },
  { key: "dataDir", flag: "data-dir", env: "SECRETD_DATA_DIR", default: "./data", doc: "directory for the SQLite database and dev keys" },
  { key: "databaseUrl", flag: "database-url", env: "SECRETD_DATABASE_URL", default: "", doc: "empty: SQLite in the data dir; postgres://user@host:5432/db?sslmode=verify-full for PostgreSQL", url: true },
  { key: "databasePoolSize", flag: "database-pool-size", env: "SECRETD_DATABASE_POOL_SIZE", default: "10", doc: "PostgreSQL: connections per server process" },
  { key: "databaseStatementTimeout", flag: "database-statement-timeout", env: "SECRETD_DATABASE_STATEMENT_TIMEOUT", default: "5s", doc: "PostgreSQL: statement_timeout (0 = none)" },
  { key: "kekFile", flag: "kek-file", env: "SECRETD_KEK_FILE", default: "", doc: "KEK keyring (default <data-dir>/kek.json, created 0600 on first start)" },
  { key: "jwtHs256SecretFile", flag: "jwt-hs256-secret-file", env: "SECRETD_JWT_HS256_SECRET_FILE", default: "", doc: "HS256 secret (default <data-dir>/jwt-dev.key when no other key source is set)" },
  { key: "jwtJwksFile", flag: "jwt-jwks-file", env: "SECRETD_JWT_JWKS_FILE", default: "", doc: "JWKS file for RS256/ES256/EdDSA tokens" },
  { key: "jwtJwksUrl", flag: "jwt-jwks-url", env: "SECRETD_JWT_JWKS_URL", default: "", doc: "JWKS URL for RS256/ES256/EdDSA tokens", url: true },
  { key: "jwtIssuer", flag: "jwt-issuer", env: "SECRETD_JWT_ISSUER", default: "", doc: "required iss (unchecked when empty)" },
  { key: "jwtAudience", flag: "jwt-audience", env: "SECRETD_JWT_AUDIENCE", default: "", doc: "required aud (unchecked when empty)" },
  { key: "jwtAlgorithms", flag: "jwt-algorithms", env: "SECRETD_JWT_ALGORITHMS", default: "", doc: "allowed algorithms (default HS256 with a secret; RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA with a JWKS)" },
  { key: "jwtMaxTtl", flag: "jwt-max-ttl", env: "SECRETD_JWT_MAX_TTL", default: "24h", doc: "longest token lifetime accepted (exp - iat; tokens without exp are refused)" },
  { key: "tenantClaim", flag: "tenant-claim", env: "SECRETD_TENANT_CLAIM", default: "tenant", doc: "JWT claim holding the tenant" },
  { key: "creatorRoles", flag: "creator-roles", env: "SECRETD_CREATOR_ROLES", default: "tenant-admin,data-admin,data-developer", doc: "roles that may create secrets" },
  { key: "maxVersions", flag: "max-versions", env: "SECRETD_MAX_VERSIONS", default: "10", doc: "versions kept readable per secret" },
  { key: "tlsCert", flag: "tls-cert", env: "SECRETD_TLS_CERT", default: "", doc: "server certificate (PEM); plaintext when empty" },
  { key: "tlsKey", flag: "tls-key", env: "SECRETD_TLS_KEY", default: "", doc: "server private key (PEM)" },
  { key: "tlsClientCa", flag: "tls-client-ca", env: "SECRETD_TLS_CLIENT_CA", default: "", doc: "CA bundle: require client certificates signed by it" },
  { key: "logLevel", flag: "log-level", env: "SECRETD_LOG_LEVEL", default: "info", doc: "trace, debug, info, warn, error, fatal or silent" },
  { key: "metricsListen", flag: "metrics-listen", env: "SECRETD_METRICS_LISTEN", default: "", doc: "Prometheus metrics address host:port, serving /metrics (off when empty)" },
  { key: "metricsTenantLabels", flag: "metrics-tenant-labels", env: "SECRETD_METRICS_TENANT_LABELS", default: "false", doc: "also count calls per tenant (tenant names become label values)", boolean: true },
  { key: "auditRetention", flag: "audit-retention", env: "SECRETD_AUDIT_RETENTION", default: "90d", doc: "how long audit events are kept: 90s, 15m, 12h, 90d" },
  { key: "auditFile", flag: "audit-file", env: "SECRETD_AUDIT_FILE", default: "", doc: "also append each audit event to this file as one JSON line (off when empty)" },
  { key: "auditMaxBytes", flag: "audit-max-bytes", env: "SECRETD_AUDIT_MAX_BYTES", default: "4GiB", doc: "size bound on the stored audit trail, besides retention; oldest events deleted first: bytes or 512MiB, 4GiB, 1TiB (0 = none)" },
  { key: "auditMaxEventsPerTenant", flag: "audit-max-events-per-tenant", env: "SECRETD_AUDIT_MAX_EVENTS_PER_TENANT", default: "50000", doc: "audit events one tenant may queue per second and server process; the rest are counted in one AuditEventsSuppressed event" },
  { key: "workers", flag: "workers", env: "SECRETD_WORKERS", default: "1", doc: "server processes on one port (node:cluster) over the same data; auto = one per available CPU" },
  { key: "valueCacheMb", flag: "value-cache-mb", env: "SECRETD_VALUE_CACHE_MB", default: "8", doc: "MiB per server process of decrypted values and encoded answers kept for hot reads, half each (0 = off; see SECURITY.md)" },
  { key: "devToken", flag: "dev-token", env: "SECRETD_DEV_TOKEN", default: "auto", doc: "print a dev tenant-admin token at start (dev key only): auto = when the dev keys were just created or stderr is a terminal; always; never" },
  { key: "maxWatchesPerTenant", flag: "max-watches-per-tenant", env: "SECRETD_MAX_WATCHES_PER_TENANT", default: "10000", doc: "open WatchProjection streams per tenant and server process" },
  { key: "maxConnections", flag: "max-connections", env: "SECRETD_MAX_CONNECTIONS", default: "10000", doc: "open client connections per server process; more are closed at once (0 = no cap)" },
  { key: "maxConnectionsPerPeer", flag: "max-connections-per-peer", env: "SECRETD_MAX_CONNECTIONS_PER_PEER", default: "1000", doc: "open client connections from one IP address per server process (0 = no cap; behind a proxy every client has its address)" },
  { key: "writeStallTimeout", flag: "write-stall-timeout", env: "SECRETD_WRITE_STALL_TIMEOUT", default: "30s", doc: "a connection holding unread answers that drains less than --min-drain-rate (or less than all it held) over this long is closed (0 = never)" },
  { key: "minDrainRate", flag: "min-drain-rate", env: "SECRETD_MIN_DRAIN_RATE", default: "16KiB", doc: "bytes per second a connection holding unread answers must take (B, KiB, MiB)" },
  { key: "maxUnreadBytesPerTenant", flag: "max-unread-bytes-per-tenant", env: "SECRETD_MAX_UNREAD_BYTES_PER_TENANT", default: "128MiB", doc: "answer bytes one tenant's clients may leave unread per server process; past it the tenant's new answers are RESOURCE_EXHAUSTED" },
  { key: "maxUnreadBytesPerConnection", flag: "max-unread-bytes-per-connection", env: "SECRETD_MAX_UNREAD_BYTES_PER_CONNECTION", default: "32MiB", doc: "answer bytes one connection may leave unread; past it its new answers are RESOURCE_EXHAUSTED" },
  { key: "maxRequestBytesPerConnection", flag: "max-request-bytes-per-connection", env: "SECRETD_MAX_REQUEST_BYTES_PER_CONNECTION", default: "32MiB", doc: "request-body bytes one connection may have buffered (unfinished bodies, before authentication); a stream past it is reset" },
  { key: "maxRequestBytesPerPeer", flag: "max-request-bytes-per-peer", env: "SECRETD_MAX_REQUEST_BYTES_PER_PEER", default: "128MiB", doc: "request-body bytes one IP address may have buffered over all its connections, per server process" },
  { key: "requestBodyTimeout", flag: "request-body-timeout", env: "SECRETD_REQUEST_BODY_TIMEOUT", default: "30s", doc: "a request body not complete this long after its headers is reset (0 = never)" },
];

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
    readonly issuer: string;
    readonly audience: string;
    readonly algorithms: readonly string[];
    /** Longest accepted exp - iat, in seconds. */
    readonly maxTtlSec: number;
    readonly tenantClaim: string;
  };
  readonly creatorRoles: readonly string[];
  readonly maxVersions: number;
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

export type DevTokenMode = "auto" | "always" | "never";
const DEV_TOKEN_MODES: readonly string[] = ["auto", "always", "never"];

function isDevTokenMode(v: string): v is DevTokenMode {
  return DEV_TOKEN_MODES.includes(v);
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
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

function parseListen(key: string, v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw bad(key, `"${v}" is not host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

function parseBoolean(key: string, v: string): boolean {
  const t = v.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(t)) return true;
  if (["false", "0", "no", "off", ""].includes(t)) return false;
  throw bad(key, `"${v.slice(0, 32)}" is not true or false`);
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

export function loadConfig(flags: ConfigFlags, env: NodeJS.ProcessEnv): Config {
  const { raw } = resolveSettings(flags, env);

  const listen = parseListen("listen", raw.listen);
  if (raw.dataDir === "") throw bad("dataDir", "must not be empty");
  const dataDir = path.resolve(raw.dataDir);
  if (raw.databaseUrl !== "" && !/^postgres(ql)?:\/\//.test(raw.databaseUrl)) {
    throw bad("databaseUrl", "must be empty (SQLite) or a postgres:// URL");
  }
  const poolSize = Number(raw.databasePoolSize);
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) throw bad("databasePoolSize", "must be an integer from 1 to 1000");
  let statementTimeoutMs = 0;
  if (raw.databaseStatementTimeout !== "0") {
    try {
      statementTimeoutMs = parseDuration(raw.databaseStatementTimeout) * 1000;
    } catch {
      throw bad("databaseStatementTimeout", `"${raw.databaseStatementTimeout.slice(0, 32)}" is not a duration like 5s or 1m (0 = none)`);
    }
  }
  if (raw.jwtJwksUrl !== "" && !/^https?:\/\//.test(raw.jwtJwksUrl)) throw bad("jwtJwksUrl", "must be an http(s) URL");

  const hasJwks = raw.jwtJwksFile !== "" || raw.jwtJwksUrl !== "";
  const hs256IsDevKey = raw.jwtHs256SecretFile === "" && !hasJwks;
  const hs256SecretFile = hs256IsDevKey ? path.join(dataDir, "jwt-dev.key") : raw.jwtHs256SecretFile;

  const defaultAlgs = [...(hs256SecretFile ? HS_ALGS : []), ...(hasJwks ? JWKS_ALGS : [])];
  const algorithms = raw.jwtAlgorithms === "" ? defaultAlgs : splitList(raw.jwtAlgorithms);
  for (const a of algorithms) {
    if (![...HS_ALGS, ...JWKS_ALGS].includes(a)) throw bad("jwtAlgorithms", `unsupported algorithm "${a}"`);
    if (HS_ALGS.includes(a) && !hs256SecretFile) throw bad("jwtAlgorithms", `${a} needs --jwt-hs256-secret-file`);
    if (JWKS_ALGS.includes(a) && !hasJwks) throw bad("jwtAlgorithms", `${a} needs --jwt-jwks-file or --jwt-jwks-url`);
  }
  if (algorithms.length === 0) throw bad("jwtAlgorithms", "no algorithm allowed");
  let maxTtlSec: number;
  try {
    maxTtlSec = parseDuration(raw.jwtMaxTtl);
  } catch {
    throw bad("jwtMaxTtl", `"${raw.jwtMaxTtl.slice(0, 32)}" is not a duration such as 15m, 1h or 7d`);
  }
  if (!/^[A-Za-z0-9_.:/-]{1,128}$/.test(raw.tenantClaim)) throw bad("tenantClaim", "must be a claim name");

  const creatorRoles = splitList(raw.creatorRoles);
  const maxVersions = Number(raw.maxVersions);
  if (!Number.isInteger(maxVersions) || maxVersions < 1 || maxVersions > 1000) throw bad("maxVersions", "must be an integer from 1 to 1000");

  if ((raw.tlsCert === "") !== (raw.tlsKey === "")) throw bad(raw.tlsCert ? "tlsKey" : "tlsCert", "--tls-cert and --tls-key go together");
  if (raw.tlsClientCa !== "" && raw.tlsCert === "") throw bad("tlsClientCa", "needs --tls-cert and --tls-key");
  if (!LOG_LEVELS.includes(raw.logLevel)) throw bad("logLevel", `must be one of ${LOG_LEVELS.join(", ")}`);
  const metricsListen = raw.metricsListen === "" ? undefined : parseListen("metricsListen", raw.metricsListen);
  const metricsTenantLabels = parseBoolean("metricsTenantLabels", raw.metricsTenantLabels);
  let auditRetentionSec: number;
  try {
    auditRetentionSec = parseDuration(raw.auditRetention);
  } catch {
    throw bad("auditRetention", `"${raw.auditRetention.slice(0, 32)}" is not a duration like 90d, 12h or 15m`);
  }
  const auditMaxBytes = parseBytes(raw.auditMaxBytes);
  if (auditMaxBytes === undefined) throw bad("auditMaxBytes", `"${raw.auditMaxBytes.slice(0, 32)}" is not a size like 512MiB, 4GiB or a number of bytes (0 = none)`);
  const auditMaxEventsPerTenant = Number(raw.auditMaxEventsPerTenant);
  if (!Number.isInteger(auditMaxEventsPerTenant) || auditMaxEventsPerTenant < 1 || auditMaxEventsPerTenant > 10_000_000) {
    throw bad("auditMaxEventsPerTenant", "must be an integer from 1 to 10000000");
  }
  const workers = raw.workers === "auto" ? os.availableParallelism() : Number(raw.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw bad("workers", `"${raw.workers}" must be auto or an integer from 1 to 64`);
  const maxWatchesPerTenant = Number(raw.maxWatchesPerTenant);
  if (!Number.isInteger(maxWatchesPerTenant) || maxWatchesPerTenant < 0 || maxWatchesPerTenant > 10_000_000) {
    throw bad("maxWatchesPerTenant", "must be an integer from 0 to 10000000");
  }
  const connectionCap = (key: "maxConnections" | "maxConnectionsPerPeer"): number => {
    const n = Number(raw[key]);
    if (!Number.isInteger(n) || n < 0 || n > 1_000_000) throw bad(key, "must be an integer from 0 to 1000000 (0 = no cap)");
    return n;
  };
  let writeStallMs = 0;
  if (raw.writeStallTimeout !== "0") {
    try {
      writeStallMs = parseDuration(raw.writeStallTimeout) * 1000;
    } catch {
      throw bad("writeStallTimeout", `"${raw.writeStallTimeout.slice(0, 32)}" is not a duration like 30s or 2m (0 = never)`);
    }
  }

  const bytes = (key: "maxRequestBytesPerConnection" | "maxRequestBytesPerPeer" | "maxUnreadBytesPerTenant" | "maxUnreadBytesPerConnection" | "minDrainRate"): number => {
    const n = parseBytes(raw[key]);
    if (n === undefined || n < 1) throw bad(key, `"${raw[key].slice(0, 32)}" is not a size like 65536, 512KiB or 32MiB (at least 1 byte)`);
    return n;
  };
  let requestBodyTimeoutMs = 0;
  if (raw.requestBodyTimeout !== "0") {
    try {
      requestBodyTimeoutMs = parseDuration(raw.requestBodyTimeout) * 1000;
    } catch {
      throw bad("requestBodyTimeout", `"${raw.requestBodyTimeout.slice(0, 32)}" is not a duration like 30s or 2m (0 = never)`);
    }
  }
  const resources = {
    requestBytesPerConnection: bytes("maxRequestBytesPerConnection"),
    requestBytesPerPeer: bytes("maxRequestBytesPerPeer"),
    requestBodyTimeoutMs,
    unreadBytesPerTenant: bytes("maxUnreadBytesPerTenant"),
    unreadBytesPerConnection: bytes("maxUnreadBytesPerConnection"),
    minDrainRate: bytes("minDrainRate"),
  };

  const valueCacheMb = Number(raw.valueCacheMb);
  if (!Number.isInteger(valueCacheMb) || valueCacheMb < 0 || valueCacheMb > 65536) throw bad("valueCacheMb", "must be an integer from 0 (off) to 65536");

  const devToken = raw.devToken;
  if (!isDevTokenMode(devToken)) throw bad("devToken", `must be one of ${DEV_TOKEN_MODES.join(", ")}`);

  const config: Config = {
    listen,
    dataDir,
    databaseUrl: raw.databaseUrl,
    database: { poolSize, statementTimeoutMs },
    kekFile: raw.kekFile === "" ? path.join(dataDir, "kek.json") : path.resolve(raw.kekFile),
    kekFileIsDefault: raw.kekFile === "",
    jwt: {
      hs256SecretFile,
      hs256IsDevKey,
      jwksFile: raw.jwtJwksFile,
      jwksUrl: raw.jwtJwksUrl,
      issuer: raw.jwtIssuer,
      audience: raw.jwtAudience,
      algorithms,
      maxTtlSec,
      tenantClaim: raw.tenantClaim,
    },
    creatorRoles,
    maxVersions,
    tls: raw.tlsCert === "" ? undefined : { cert: raw.tlsCert, key: raw.tlsKey, clientCa: raw.tlsClientCa },
    logLevel: raw.logLevel,
    metricsListen,
    metricsTenantLabels,
    audit: {
      retentionMs: auditRetentionSec * 1000,
      file: raw.auditFile === "" ? "" : path.resolve(raw.auditFile),
      maxBytes: auditMaxBytes,
      maxEventsPerTenant: auditMaxEventsPerTenant,
    },
    maxWatchesPerTenant,
    workers,
    connections: { max: connectionCap("maxConnections"), maxPerPeer: connectionCap("maxConnectionsPerPeer"), writeStallMs },
    resources,
    valueCacheBytes: valueCacheMb * 1024 * 1024,
    devToken,
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
