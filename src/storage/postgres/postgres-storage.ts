/**
 * The scale-out back-end: PostgreSQL through a `pg` pool, so several stateless secretd
 * replicas serve one data set. Same contract as SQLite (the conformance suite runs
 * against both): uniqueness per scope by a unique index (INSERT … ON CONFLICT, never
 * check-then-insert), compare-and-set on etag in the UPDATE's WHERE, multi-row reads in
 * one REPEATABLE READ snapshot. A database that cannot be reached answers UNAVAILABLE.
 */
import pg from "pg";
import { SecretdError } from "../../errors.js";
import type {
  AuditQuery,
  AuditRow,
  CreateRequestRow,
  DekReplacement,
  GrantRow,
  GrantSet,
  GrantsMacGuard,
  Heartbeat,
  LeaseRow,
  ListedSecret,
  ListQuery,
  MacReplacement,
  MacRows,
  RowCheck,
  Scope,
  SecretRow,
  SecretWithVersion,
  Storage,
  StoredAuditRow,
  VersionKeyRow,
  VersionRow,
  WatchLease,
} from "../storage.js";
import { auditKeysJson, auditRowBytes } from "../audit-row-bytes.js";
import { SECRET_COLUMNS, blob, num, toAudit, toGrant, toLease, toSecret, type AuditRecord, type GrantRecord, type LeaseRecord, type SecretRecord } from "../sql/rows.js";
import { Rekeyed, assertBackfillApplied, auditBounds, ANY_MAC_SQL, backfillGate, conflictOrMissing, dekSwap, grantGuard, macSwap, macUid } from "../sql/write-rules.js";
import { migrate as runMigrations, schemaMigrationsSql } from "../sql/migrate.js";
import { PG_MIGRATIONS } from "./migrations.js";
import { ReadCache } from "../read-cache.js";
import { POSTGRES_FEED_DEFAULTS, PostgresChangeFeed, type ChangeInput, type PostgresFeedOptions } from "./postgres-change-feed.js";

export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  /** Server-side statement_timeout in ms (default 5000; 0 = none). */
  readonly statementTimeoutMs?: number;
  /** Called with a connection-level failure (for the log); never with a value. */
  readonly onError?: (err: unknown) => void;
  /** Change feed tuning (tests shrink the retained window). */
  readonly feed?: Partial<Omit<PostgresFeedOptions, "onError">>;
  /** Told how long each write transaction took, COMMIT included (a metric). */
  readonly onCommit?: (seconds: number) => void;
}

/** Any advisory-lock key will do as long as every replica uses the same one. */
const MIGRATION_LOCK = 0x5ec7e7d;

interface VersionRecord {
  v_version: string | null;
  v_keys: string | null;
  v_dek: Buffer | null;
  v_payload: Buffer | null;
  v_create_time: string | null;
  v_mac: Buffer | null;
}

/** The newest stored version of the row's uid (0 when none): a current pointer below it is a rollback. */
interface LatestVersion {
  latest_version: string;
}

/** A backwards index scan on the primary key (uid, version). */
const LATEST_VERSION = "(SELECT COALESCE(max(l.version), 0) FROM secret_versions l WHERE l.uid = s.uid) AS latest_version";

/** Every grant of the row's secret as one JSON array (bigints as JSON numbers). */
const GRANTS_JSON = `(SELECT COALESCE(json_agg(json_build_object('secret_uid', g.secret_uid, 'subject', g.subject, 'permission', g.permission,
           'keys', g.keys, 'expire_time', g.expire_time, 'granted_by', g.granted_by, 'create_time', g.create_time)
         ORDER BY g.subject, g.permission), '[]'::json)
    FROM grants g WHERE g.secret_uid = s.uid)`;


/** SQLSTATE classes that mean "the database is not there right now", not "the request is wrong". */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : "";
  if (["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND", "EPIPE"].includes(code)) return true;
  // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now; 53300: too many connections.
  if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300") return true;
  const msg = typeof e.message === "string" ? e.message : "";
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(msg);
}

/** A pg error as the one vocabulary: UNAVAILABLE when the database is not there, INTERNAL otherwise (cause kept, never sent). */
export function wrap(err: unknown): SecretdError {
  if (err instanceof SecretdError) return err;
  if (isUnavailable(err)) return new SecretdError("UNAVAILABLE", "the database is unreachable", { cause: err });
  if ((err as { code?: unknown }).code === "57014") return new SecretdError("UNAVAILABLE", "the database did not answer in time", { cause: err });
  return new SecretdError("INTERNAL", "database error", { cause: err });
}

/**
 * The server asked for a password (SCRAM, PostgreSQL's default) and the URL carries none:
 * the driver's own words ("SASL: … client password must be a string") say neither.
 */
export function noPasswordError(err: unknown): SecretdError | undefined {
  const message = err instanceof Error ? err.message : "";
  if (!/client password must be a string/.test(message)) return undefined;
  return new SecretdError(
    "FAILED_PRECONDITION",
    "cannot open the PostgreSQL database: the database URL has no password, and the server asks for one: " +
      "give it in the URL (postgres://USER:PASSWORD@HOST/DB), set through SECRETD_DATABASE_URL or --config rather than on the command line",
    { cause: err },
  );
}

/**
 * Why the database could not be opened at start, in words an operator can act on: the
 * driver's and the server's own message (a TLS verification failure, a pg_hba refusal, an
 * unknown database), which name hosts, users and databases but never the password.
 */
function openError(err: unknown): SecretdError {
  if (err instanceof SecretdError) return err;
  const missing = noPasswordError(err);
  if (missing !== undefined) return missing;
  const message = err instanceof Error ? err.message.slice(0, 500) : "unknown error";
  const code = isUnavailable(err) ? "UNAVAILABLE" : "FAILED_PRECONDITION";
  return new SecretdError(code, `cannot open the PostgreSQL database: ${message}`, { cause: err });
}

type Queryable = Pick<pg.PoolClient, "query">;

/**
 * Watches of dead replicas removed per renewal, each with its sources (at most 256):
 * 16 took a renewal to 35-165 ms on SQLite (secure_delete), 4 keeps it to tens.
 */
const PRUNE_WATCHES = 4;

type Identity = Pick<SecretRow, "tenant" | "mesh" | "name" | "uid">;

function change(kind: ChangeInput["kind"], s: Identity): ChangeInput {
  return { kind, tenant: s.tenant, mesh: s.mesh, name: s.name, uid: s.uid };
}

export class PostgresStorage implements Storage {
  private closed = false;
  /** Hot secrets without SQL; see read-cache.ts for how it stays coherent with the feed. */
  private readonly cache = new ReadCache();
  /** The feed's LISTEN connection the cached entries were heard under (see cacheLive). */
  private cacheListening = 0;

  private constructor(
    private readonly pool: pg.Pool,
    readonly changes: PostgresChangeFeed,
    private readonly onCommit: (seconds: number) => void,
  ) {
    // The read cache is one more subscriber of the feed: the only way it learns of writes.
    changes.subscribe((ev) => {
      if (ev.type === "changes") for (const c of ev.changes) this.cache.invalidate(c.uid);
      else this.cache.clear();
    });
  }

  /**
   * True when the read cache may answer: the feed is listening, so another replica's
   * write reaches it within a notification. A new (or no) LISTEN connection drops every
   * entry: what changed while none listened arrives only by the catch-up read.
   */
  private cacheLive(): boolean {
    const now = this.changes.listening;
    if (now !== this.cacheListening) {
      this.cache.clear();
      this.cacheListening = now;
    }
    return now !== 0;
  }

  /** Connects, applies pending migrations under an advisory lock, and returns the store. */
  static async open(url: string, opts: PostgresOptions = {}): Promise<PostgresStorage> {
    const timeout = opts.statementTimeoutMs ?? 5000;
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      ...(timeout > 0 ? { statement_timeout: timeout } : {}),
      application_name: "secretd",
    });
    // An idle client whose connection drops emits here; without a listener it would crash the process.
    pool.on("error", (err) => opts.onError?.(err));
    try {
      await migrate(pool);
      const feedOptions = { ...POSTGRES_FEED_DEFAULTS, ...opts.feed, ...(opts.onError ? { onError: opts.onError } : {}) };
      return new PostgresStorage(pool, await PostgresChangeFeed.open(url, feedOptions), opts.onCommit ?? (() => {}));
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw openError(err);
    }
  }

  private async q<R extends pg.QueryResultRow>(text: string, values: unknown[] = [], on: Queryable = this.pool): Promise<pg.QueryResult<R>> {
    if (this.closed) throw new SecretdError("UNAVAILABLE", "storage is closed");
    try {
      return await on.query<R>(text, values);
    } catch (err) {
      throw wrap(err);
    }
  }

  /** Runs fn in one transaction on one pooled connection; rolls back on any throw. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>, isolation = "READ COMMITTED"): Promise<T> {
    if (this.closed) throw new SecretdError("UNAVAILABLE", "storage is closed");
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (err) {
      throw wrap(err);
    }
    let broken = false;
    // A checked-out client's connection error is emitted on the client, not the pool:
    // without a listener it would be an uncaught exception.
    const onError = (): void => {
      broken = true;
    };
    c.on("error", onError);
    try {
      const started = performance.now();
      // Marked as secretd's (one round trip): migration 9's trigger tells replicas of writes without the mark only.
      await c.query(`BEGIN ISOLATION LEVEL ${isolation}; SET LOCAL secretd.writer = 'on'`);
      const out = await fn(c);
      await c.query("COMMIT");
      this.onCommit((performance.now() - started) / 1000);
      return out;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => {
        broken = true;
      });
      if (err instanceof Rollback) return err.value as T;
      throw wrap(err);
    } finally {
      c.off("error", onError);
      c.release(broken);
    }
  }

  /**
   * A writing transaction: fn returns its answer and the changes it made; they are recorded
   * (stamped with the transaction's id, no lock) just before COMMIT, and subscribers hear
   * of them before the answer returns.
   */
  private async write<T>(fn: (c: pg.PoolClient) => Promise<{ value: T; changes: readonly ChangeInput[] }>): Promise<T> {
    let xid: string | undefined;
    const value = await this.tx(async (c) => {
      const out = await fn(c);
      xid = await this.changes.record(c, out.changes);
      return out.value;
    });
    await this.changes.committed(xid);
    return value;
  }

  private async uidIdentity(c: Queryable, uid: string): Promise<Identity | undefined> {
    const r = await this.q<Identity>("SELECT tenant, mesh, name, uid FROM secrets WHERE uid = $1", [uid], c);
    return r.rows[0];
  }

  private async insertVersion(c: Queryable, v: VersionRow): Promise<void> {
    await this.q(
      "INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      [v.uid, v.version, JSON.stringify(v.keys), Buffer.from(v.dek), Buffer.from(v.payload), v.createTime, blob(v.mac)],
      c,
    );
  }

  async insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists"> {
    type R = "ok" | "exists" | "request-exists";
    return this.write<R>(async (c) => {
      const none = (value: R) => ({ value, changes: [] });
      if (request) {
        const seen = await this.q("SELECT 1 FROM create_requests WHERE tenant = $1 AND sub = $2 AND request_id = $3", [secret.tenant, request.sub, request.requestId], c);
        if (seen.rowCount) return none("request-exists");
      }
      const r = await this.q(
        `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time, mac, grants_mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (tenant, mesh, name) DO NOTHING`,
        [
          secret.uid,
          secret.tenant,
          secret.mesh,
          secret.name,
          secret.type,
          secret.description,
          secret.owner,
          JSON.stringify(secret.labels),
          JSON.stringify(secret.annotations),
          secret.immutable,
          secret.version,
          secret.etag,
          JSON.stringify(secret.keys),
          secret.createTime,
          secret.updateTime,
          secret.expireTime ?? null,
          blob(secret.mac),
          blob(secret.grantsMac),
        ],
        c,
      );
      if (r.rowCount === 0) {
        // A racing retry with the same id may have taken the name: ON CONFLICT waited for its
        // commit, and this new statement (READ COMMITTED) sees its create_requests row.
        if (request) {
          const raced = await this.q("SELECT 1 FROM create_requests WHERE tenant = $1 AND sub = $2 AND request_id = $3", [secret.tenant, request.sub, request.requestId], c);
          if (raced.rowCount) return none("request-exists");
        }
        return none("exists");
      }
      await this.insertVersion(c, version);
      if (request) {
        // Two racing retries with one id: the unique key lets one in; the other rolls back.
        const ins = await this.q(
          `INSERT INTO create_requests (tenant, sub, request_id, secret_uid, fingerprint, create_time, mac) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (tenant, sub, request_id) DO NOTHING`,
          [secret.tenant, request.sub, request.requestId, secret.uid, request.fingerprint, secret.createTime, blob(request.mac)],
          c,
        );
        if (ins.rowCount === 0) throw new Rollback("request-exists" as const);
      }
      return { value: "ok" as const, changes: [change("secret-created", secret)] };
    });
  }

  async findCreateRequest(tenant: string, sub: string, requestId: string): Promise<CreateRequestRow | undefined> {
    const r = await this.q<{ sub: string; request_id: string; secret_uid: string; fingerprint: string; mac: Buffer | null }>(
      "SELECT sub, request_id, secret_uid, fingerprint, mac FROM create_requests WHERE tenant = $1 AND sub = $2 AND request_id = $3",
      [tenant, sub, requestId],
    );
    const row = r.rows[0];
    return row ? { sub: row.sub, requestId: row.request_id, secretUid: row.secret_uid, fingerprint: row.fingerprint, mac: row.mac ?? undefined } : undefined;
  }

  /**
   * Secrets of one scope with one version each (0 = current) and their grants, in ONE
   * statement: one snapshot without a transaction, one round trip (GetSecret's hot path).
   */
  private async readMany(scope: Scope, names: readonly string[], version: number): Promise<Map<string, SecretWithVersion>> {
    const r = await this.q<SecretRecord & VersionRecord & LatestVersion & { grants: GrantRecord[] }>(
      `SELECT ${SECRET_COLUMNS}, v.version AS v_version, v.keys AS v_keys, v.dek AS v_dek, v.payload AS v_payload, v.create_time AS v_create_time,
         v.mac AS v_mac, ${LATEST_VERSION}, ${GRANTS_JSON} AS grants
       FROM secrets s LEFT JOIN secret_versions v
         ON v.uid = s.uid AND v.version = CASE WHEN $4::bigint = 0 THEN s.version ELSE $4::bigint END
       WHERE s.tenant = $1 AND s.mesh = $2 AND s.name = ANY($3::text[])`,
      [scope.tenant, scope.mesh, [...names], version],
    );
    const out = new Map<string, SecretWithVersion>();
    for (const rec of r.rows) {
      const v: VersionRow | undefined =
        rec.v_version === null
          ? undefined
          : {
              uid: rec.uid,
              version: num(rec.v_version),
              keys: JSON.parse(rec.v_keys!) as string[],
              dek: rec.v_dek!,
              payload: rec.v_payload!,
              createTime: num(rec.v_create_time!),
              mac: rec.v_mac ?? undefined,
            };
      out.set(rec.name, { secret: toSecret(rec), version: v, grants: rec.grants.map(toGrant), latestVersion: num(rec.latest_version) });
    }
    return out;
  }

  async readSecret(scope: Scope, name: string, version: number, fresh = false): Promise<SecretWithVersion | undefined> {
    if (fresh) return (await this.readMany(scope, [name], version)).get(name);
    const live = this.cacheLive();
    const hit = live ? this.cache.get(scope, name, version) : undefined;
    if (hit !== undefined) return hit;
    const since = this.cache.epoch;
    const found = (await this.readMany(scope, [name], version)).get(name);
    return found !== undefined && live ? this.cache.put(scope, name, version, found, since) : found;
  }

  async readSecrets(scope: Scope, names: readonly string[], onRow?: RowCheck): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
    const live = this.cacheLive();
    if (live) {
      // All cached: each entry is current as of the feed; one SELECT for all otherwise (one snapshot).
      const cached = names.map((n) => this.cache.get(scope, n, 0));
      if (cached.every((c) => c !== undefined)) {
        if (onRow) names.forEach((n, i) => onRow(n, cached[i]));
        return cached;
      }
    }
    const since = this.cache.epoch;
    // One SELECT reads them all; onRow still sees each before the next is kept.
    const found = await this.readMany(scope, names, 0);
    return names.map((n) => {
      const f = found.get(n);
      const row = f !== undefined && live ? this.cache.put(scope, n, 0, f, since) : f;
      onRow?.(n, row);
      return row;
    });
  }

  async listSecrets(scope: Scope, q: ListQuery): Promise<ListedSecret[]> {
    const params: unknown[] = [scope.tenant, scope.mesh, q.afterName, q.type ?? null, q.expireBefore ?? null, q.limit];
    let visible = "";
    // A non-owner sees a row through a grant: its grants come along (one snapshot), so
    // the row-MAC check can decide visibility again on the authenticated set.
    let grants = "";
    if (q.visibleTo) {
      grants = `, CASE WHEN s.owner = $7 THEN NULL ELSE ${GRANTS_JSON} END AS grants`;
      params.push(q.visibleTo.owner, [...q.visibleTo.subjects], q.visibleTo.now);
      visible = `AND (s.owner = $7 OR EXISTS (
          SELECT 1 FROM grants g WHERE g.secret_uid = s.uid AND g.subject = ANY($8::text[])
            AND (g.expire_time IS NULL OR g.expire_time > $9)))`;
    }
    const r = await this.q<SecretRecord & LatestVersion & { grants?: GrantRecord[] | null }>(
      `SELECT ${SECRET_COLUMNS}, ${LATEST_VERSION}${grants} FROM secrets s
       WHERE s.tenant = $1 AND s.mesh = $2 AND s.name > $3 AND ($4::text IS NULL OR s.type = $4)
         AND ($5::bigint IS NULL OR s.expire_time <= $5) ${visible}
       ORDER BY s.name LIMIT $6`,
      params,
    );
    return r.rows.map((rec): ListedSecret => {
      const listed = { ...toSecret(rec), latestVersion: num(rec.latest_version) };
      return rec.grants === undefined || rec.grants === null ? listed : { ...listed, grants: rec.grants.map(toGrant) };
    });
  }

  async updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const r = await this.q(
        `UPDATE secrets SET description = $3, labels = $4, annotations = $5, version = $6, etag = $7, keys = $8, update_time = $9, expire_time = $10, mac = $11
         WHERE uid = $1 AND etag = $2`,
        [
          next.uid,
          expectEtag,
          next.description,
          JSON.stringify(next.labels),
          JSON.stringify(next.annotations),
          next.version,
          next.etag,
          JSON.stringify(next.keys),
          next.updateTime,
          next.expireTime ?? null,
          blob(next.mac),
        ],
        c,
      );
      if (r.rowCount === 0) {
        const e = await this.q("SELECT 1 FROM secrets WHERE uid = $1", [next.uid], c);
        return { value: conflictOrMissing((e.rowCount ?? 0) > 0), changes: [] };
      }
      await this.insertVersion(c, version);
      await this.q("DELETE FROM secret_versions WHERE uid = $1 AND version <= $2", [next.uid, version.version - maxVersions], c);
      return { value: "ok" as const, changes: [change("secret-updated", next)] };
    });
  }

  async deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const r = await this.q<Identity>("DELETE FROM secrets WHERE uid = $1 AND ($2::text IS NULL OR etag = $2) RETURNING tenant, mesh, name, uid", [uid, etag ?? null], c);
      const gone = r.rows[0];
      if (gone) return { value: "ok" as const, changes: [change("secret-deleted", gone)] };
      const e = await this.q("SELECT 1 FROM secrets WHERE uid = $1", [uid], c);
      return { value: conflictOrMissing((e.rowCount ?? 0) > 0), changes: [] };
    });
  }

  /**
   * The secret row, locked for this transaction: grant writes on one secret serialize on
   * it, so a guard's compare-and-set on grants_mac sees the last committed set.
   */
  private async lockGrants(c: Queryable, uid: string): Promise<(Identity & { grants_mac: Buffer | null }) | undefined> {
    const r = await this.q<Identity & { grants_mac: Buffer | null }>("SELECT tenant, mesh, name, uid, grants_mac FROM secrets WHERE uid = $1 FOR UPDATE", [uid], c);
    return r.rows[0];
  }

  async putGrant(g: GrantRow, guard?: GrantsMacGuard): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const s = await this.lockGrants(c, g.secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return { value: decision === "write" ? ("missing" as const) : decision, changes: [] };
      await this.q(
        `INSERT INTO grants (secret_uid, subject, permission, keys, expire_time, granted_by, create_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (secret_uid, subject, permission) DO UPDATE SET
           keys = excluded.keys, expire_time = excluded.expire_time, granted_by = excluded.granted_by, create_time = excluded.create_time`,
        [g.secretUid, g.subject, g.level, JSON.stringify(g.keys), g.expireTime ?? null, g.grantedBy, g.createTime],
        c,
      );
      if (guard) await this.q("UPDATE secrets SET grants_mac = $2 WHERE uid = $1", [g.secretUid, Buffer.from(guard.next)], c);
      return { value: "ok" as const, changes: [change("grant-put", s)] };
    });
  }

  async deleteGrants(secretUid: string, subject: string, level: number | undefined, guard?: GrantsMacGuard): Promise<number | "conflict"> {
    return this.write(async (c) => {
      const none = (value: number | "conflict") => ({ value, changes: [] });
      const s = await this.lockGrants(c, secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return none(decision === "conflict" ? "conflict" : 0);
      const r = await this.q("DELETE FROM grants WHERE secret_uid = $1 AND subject = $2 AND ($3::int IS NULL OR permission = $3)", [secretUid, subject, level ?? null], c);
      const removed = r.rowCount ?? 0;
      if (removed === 0) return none(0);
      if (guard) await this.q("UPDATE secrets SET grants_mac = $2 WHERE uid = $1", [secretUid, Buffer.from(guard.next)], c);
      return { value: removed, changes: [change("grant-revoked", s)] };
    });
  }

  async readGrants(secretUid: string): Promise<GrantSet | undefined> {
    const r = await this.q<{ grants_mac: Buffer | null; grants: GrantRecord[] }>(`SELECT s.grants_mac, ${GRANTS_JSON} AS grants FROM secrets s WHERE s.uid = $1`, [secretUid]);
    const row = r.rows[0];
    return row ? { grants: row.grants.map(toGrant), grantsMac: row.grants_mac ?? undefined } : undefined;
  }

  /** Secrets after `afterUid` with every MAC-covered row, read in the caller's snapshot. */
  private async macRowsAfter(c: Queryable, afterUid: string, limit: number | null): Promise<MacRows[]> {
    const secrets = await this.q<SecretRecord & { grants: GrantRecord[] }>(
      `SELECT ${SECRET_COLUMNS}, ${GRANTS_JSON} AS grants FROM secrets s WHERE s.uid > $1 ORDER BY s.uid LIMIT $2`,
      [afterUid, limit],
      c,
    );
    const uids = secrets.rows.map((r) => r.uid);
    if (uids.length === 0) return [];
    const versions = await this.q<{ uid: string; version: string; keys: string; create_time: string; mac: Buffer | null }>(
      "SELECT uid, version, keys, create_time, mac FROM secret_versions WHERE uid = ANY($1::text[]) ORDER BY uid, version",
      [uids],
      c,
    );
    const requests = await this.q<{ tenant: string; sub: string; request_id: string; secret_uid: string; fingerprint: string; mac: Buffer | null }>(
      "SELECT tenant, sub, request_id, secret_uid, fingerprint, mac FROM create_requests WHERE secret_uid = ANY($1::text[]) ORDER BY tenant, sub, request_id",
      [uids],
      c,
    );
    const byUid = new Map<string, { versions: MacRows["versions"][number][]; requests: MacRows["requests"][number][] }>();
    for (const uid of uids) byUid.set(uid, { versions: [], requests: [] });
    for (const v of versions.rows) {
      byUid.get(v.uid)?.versions.push({ uid: v.uid, version: num(v.version), keys: JSON.parse(v.keys) as string[], createTime: num(v.create_time), mac: v.mac ?? undefined });
    }
    for (const q of requests.rows) {
      byUid.get(q.secret_uid)?.requests.push({ tenant: q.tenant, sub: q.sub, requestId: q.request_id, secretUid: q.secret_uid, fingerprint: q.fingerprint, mac: q.mac ?? undefined });
    }
    return secrets.rows.map((r) => ({ secret: toSecret(r), grants: r.grants.map(toGrant), ...byUid.get(r.uid)! }));
  }

  async listMacRows(afterUid: string, limit: number): Promise<MacRows[]> {
    return this.tx((c) => this.macRowsAfter(c, afterUid, limit), "REPEATABLE READ");
  }

  /**
   * Inside the caller's write transaction, each a compare-and-set on the old bytes; each
   * secret whose secret, grant-set or version MAC changed gets one "secret-rekeyed" change.
   */
  private async applyMacs(c: Queryable, replacements: readonly MacReplacement[]): Promise<{ value: number; changes: ChangeInput[] }> {
    const touched = new Rekeyed();
    for (const r of replacements) {
      const { old, next } = macSwap(r);
      let res;
      if (r.kind === "request") {
        res = await this.q("UPDATE create_requests SET mac = $3 WHERE tenant = $1 AND request_id = $2 AND sub = $5 AND mac IS NOT DISTINCT FROM $4::bytea", [r.tenant, r.requestId, next, old, r.sub], c);
      } else if (r.kind === "version") {
        res = await this.q("UPDATE secret_versions SET mac = $3 WHERE uid = $1 AND version = $2 AND mac IS NOT DISTINCT FROM $4::bytea", [r.uid, r.version, next, old], c);
      } else {
        const column = r.kind === "grants" ? "grants_mac" : "mac";
        res = await this.q(`UPDATE secrets SET ${column} = $2 WHERE uid = $1 AND ${column} IS NOT DISTINCT FROM $3::bytea`, [r.uid, next, old], c);
      }
      touched.note(macUid(r), res.rowCount ?? 0);
    }
    return { value: touched.applied, changes: await this.rekeyedChanges(c, touched) };
  }

  private async rekeyedChanges(c: Queryable, rekeyed: Rekeyed): Promise<ChangeInput[]> {
    const changes: ChangeInput[] = [];
    for (const uid of rekeyed.uids) {
      const s = await this.uidIdentity(c, uid);
      if (s) changes.push(change("secret-rekeyed", s));
    }
    return changes;
  }

  async replaceMacs(replacements: readonly MacReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.write((c) => this.applyMacs(c, replacements));
  }

  async backfillMacs(compute: (rows: readonly MacRows[]) => readonly MacReplacement[]): Promise<number | "none" | "refused"> {
    type R = number | "none" | "refused";
    return this.write(async (c): Promise<{ value: R; changes: ChangeInput[] }> => {
      // Replicas starting together queue on the mark's row; the first clears it, the others find none.
      const mark = await this.q("SELECT id FROM mac_backfill FOR UPDATE", [], c);
      if (mark.rowCount === 0) return { value: "none", changes: [] };
      // Writers of any other process (an older secretd still running) wait until this commits.
      await this.q("LOCK TABLE secrets, grants, secret_versions, create_requests IN SHARE ROW EXCLUSIVE MODE", [], c);
      // Migration 3 leaves the mark (see backfillGate).
      const any = await this.q<{ any: boolean }>(`${ANY_MAC_SQL} AS any`, [], c);
      const gate = backfillGate(true, any.rows[0]!.any);
      if (gate !== "backfill") return { value: gate, changes: [] };
      const replacements = compute(await this.macRowsAfter(c, "", null));
      const out = await this.applyMacs(c, replacements);
      assertBackfillApplied(out.value, replacements);
      await this.q("DELETE FROM mac_backfill", [], c);
      return out;
    });
  }

  async listVersionKeys(afterUid: string, afterVersion: number, limit: number): Promise<VersionKeyRow[]> {
    const r = await this.q<{ uid: string; version: string; tenant: string; mesh: string; name: string; dek: Buffer }>(
      `SELECT v.uid, v.version, s.tenant, s.mesh, s.name, v.dek FROM secret_versions v JOIN secrets s ON s.uid = v.uid
       WHERE (v.uid, v.version) > ($1, $2) ORDER BY v.uid, v.version LIMIT $3`,
      [afterUid, afterVersion, limit],
    );
    return r.rows.map((x) => ({ uid: x.uid, version: num(x.version), tenant: x.tenant, mesh: x.mesh, name: x.name, dek: x.dek }));
  }

  async kekIdsInUse(): Promise<string[]> {
    const r = await this.q<{ id: string }>("SELECT DISTINCT encode(substring(dek from 3 for get_byte(dek, 1)), 'escape') AS id FROM secret_versions WHERE length(dek) > 2");
    return r.rows.map((x) => x.id);
  }

  async replaceDeks(replacements: readonly DekReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.write(async (c) => {
      const rekeyed = new Rekeyed();
      for (const r of replacements) {
        const d = dekSwap(r);
        const res = await this.q("UPDATE secret_versions SET dek = $4 WHERE uid = $1 AND version = $2 AND dek = $3", [d.uid, d.version, d.oldDek, d.newDek], c);
        rekeyed.note(r.uid, res.rowCount ?? 0);
      }
      return { value: rekeyed.applied, changes: await this.rekeyedChanges(c, rekeyed) };
    });
  }

  async openReplica(replica: string, hb: Heartbeat): Promise<void> {
    await this.q("INSERT INTO consumer_replicas (replica, last_seen, expire_time) VALUES ($1, $2, $3) ON CONFLICT (replica) DO NOTHING", [replica, hb.now, hb.expireTime]);
  }

  async putLeases(lease: WatchLease, secretUids: readonly string[], now: number): Promise<boolean> {
    return this.tx(async (c) => {
      // FOR KEY SHARE: a replica's row cannot be pruned while a watch of it is being added.
      const live = await this.q("SELECT 1 FROM consumer_replicas WHERE replica = $1 AND expire_time > $2 FOR KEY SHARE", [lease.replica, now], c);
      if (live.rowCount === 0) return false;
      await this.q(
        `INSERT INTO consumer_watches (watch_id, replica, tenant, sub, roles, revision, since) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (watch_id) DO UPDATE SET revision = excluded.revision`,
        [lease.watchId, lease.replica, lease.tenant, lease.sub, JSON.stringify(lease.roles), lease.revision, lease.since],
        c,
      );
      // A secret that no longer exists is skipped (INSERT … SELECT from secrets).
      if (secretUids.length > 0) {
        await this.q(
          "INSERT INTO consumer_watch_sources (secret_uid, watch_id) SELECT s.uid, $2 FROM secrets s WHERE s.uid = ANY($1::text[]) ON CONFLICT DO NOTHING",
          [[...secretUids], lease.watchId],
          c,
        );
      }
      return true;
    });
  }

  async deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void> {
    if (secretUids === undefined) {
      await this.q("DELETE FROM consumer_watches WHERE watch_id = $1", [watchId]);
      return;
    }
    await this.tx(async (c) => {
      await this.q("DELETE FROM consumer_watch_sources WHERE watch_id = $1 AND secret_uid = ANY($2::text[])", [watchId, [...secretUids]], c);
      await this.q("DELETE FROM consumer_watches w WHERE w.watch_id = $1 AND NOT EXISTS (SELECT 1 FROM consumer_watch_sources s WHERE s.watch_id = w.watch_id)", [watchId], c);
    });
  }

  async renewLeases(replica: string, hb: Heartbeat, revisions: ReadonlyMap<string, string>): Promise<number> {
    const written = await this.tx(async (c) => {
      const r = await this.q("UPDATE consumer_replicas SET last_seen = $2, expire_time = $3 WHERE replica = $1 AND expire_time > $2", [replica, hb.now, hb.expireTime], c);
      let n = r.rowCount ?? 0;
      if (n > 0 && revisions.size > 0) {
        const u = await this.q(
          `UPDATE consumer_watches w SET revision = r.revision FROM unnest($1::text[], $2::text[]) AS r (watch_id, revision)
           WHERE w.watch_id = r.watch_id AND w.replica = $3`,
          [[...revisions.keys()], [...revisions.values()], replica],
          c,
        );
        n += u.rowCount ?? 0;
      }
      return n;
    });
    // Dead replicas' rows, a bounded chunk at a time (sources by cascade), after the
    // heartbeat's own commit: a clash with another replica's pruning never fails it.
    try {
      await this.q(
        `DELETE FROM consumer_watches WHERE watch_id IN (
           SELECT w.watch_id FROM consumer_replicas r JOIN consumer_watches w ON w.replica = r.replica
           WHERE r.expire_time <= $1 LIMIT ${PRUNE_WATCHES} FOR UPDATE OF w SKIP LOCKED)`,
        [hb.now],
      );
      await this.q(
        "DELETE FROM consumer_replicas r WHERE r.expire_time <= $1 AND NOT EXISTS (SELECT 1 FROM consumer_watches w WHERE w.replica = r.replica)",
        [hb.now],
      );
    } catch {
      // Pruning is garbage collection: dead leases never count; the next renewal goes on.
    }
    return written;
  }

  async deleteReplicaLeases(replica: string): Promise<void> {
    await this.q("UPDATE consumer_replicas SET expire_time = 0 WHERE replica = $1", [replica]);
  }

  async listLeases(secretUid: string, now: number): Promise<LeaseRow[]> {
    const r = await this.q<LeaseRecord>(
      `SELECT w.watch_id, s.secret_uid, w.tenant, w.sub, w.roles, w.revision, w.since, r.last_seen, r.expire_time, w.replica
       FROM consumer_watch_sources s JOIN consumer_watches w ON w.watch_id = s.watch_id JOIN consumer_replicas r ON r.replica = w.replica
       WHERE s.secret_uid = $1 AND r.expire_time > $2 ORDER BY w.since, w.watch_id`,
      [secretUid, now],
    );
    return r.rows.map(toLease);
  }

  async appendAudit(events: readonly AuditRow[]): Promise<void> {
    if (events.length === 0) return;
    // One statement for the batch (one round trip, one commit); WITH ORDINALITY keeps the
    // batch's order in the ids it is given.
    const started = performance.now();
    const keys = events.map((e) => auditKeysJson(e.keys));
    // The sizes' sum joins audit_usage in the same statement (--audit-max-bytes).
    await this.q(
      `WITH ins AS (
         INSERT INTO audit_events (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, size)
         SELECT e.tenant, e.time, e.request_id, e.method, e.sub, e.mesh, e.name, e.version, e.keys, e.code, e.peer, e.size
         FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::bigint[])
           WITH ORDINALITY AS e (tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer, size, ord)
         ORDER BY e.ord
         RETURNING size)
       UPDATE audit_usage SET bytes = bytes + (SELECT coalesce(sum(size), 0) FROM ins) WHERE id = 1`,
      [
        events.map((e) => e.tenant),
        events.map((e) => e.time),
        events.map((e) => e.requestId),
        events.map((e) => e.method),
        events.map((e) => e.sub),
        events.map((e) => e.mesh),
        events.map((e) => e.name),
        events.map((e) => e.version),
        keys,
        events.map((e) => e.code),
        events.map((e) => e.peer),
        events.map((e, i) => auditRowBytes(e, keys[i]!)),
      ],
    );
    this.onCommit((performance.now() - started) / 1000);
  }

  async listAudit(tenant: string, q: AuditQuery): Promise<StoredAuditRow[]> {
    // The row comparison (time, id) > (…) and the time bounds ride the (tenant, time, id) index.
    // A sub or name filter leads with an equality its (tenant, sub|name, time, id) index seeks (#27 item 6).
    const b = auditBounds(q);
    const lead = b.by === "sub" ? "AND sub = $8" : b.by === "name" ? "AND name = $7" : "";
    const r = await this.q<AuditRecord>(
      `SELECT id, tenant, time, request_id, method, sub, mesh, name, version, keys, code, peer FROM audit_events
       WHERE tenant = $1 ${lead} AND (time, id) > ($2::bigint, $3::bigint) AND time >= $4::bigint AND time < $5::bigint
         AND ($6::text IS NULL OR mesh = $6) AND ($7::text IS NULL OR name = $7) AND ($8::text IS NULL OR sub = $8)
         AND ($9::text[] IS NULL OR mesh = ANY($9::text[]))
       ORDER BY time, id LIMIT $10`,
      [
        tenant,
        b.afterTime,
        b.afterId,
        b.lo,
        b.hi,
        b.mesh,
        b.name,
        b.sub,
        b.meshes,
        b.limit,
      ],
    );
    return r.rows.map(toAudit);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    const r = await this.q<{ n: string }>(
      `WITH gone AS (DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE time < $1 ORDER BY time LIMIT $2) RETURNING size)
       UPDATE audit_usage SET bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone) WHERE id = 1 RETURNING (SELECT count(*) FROM gone) AS n`,
      [before, limit],
    );
    return Number(r.rows[0]?.n ?? 0);
  }

  async pruneAuditBytes(maxBytes: number, limit: number): Promise<number> {
    return this.tx(async (c) => {
      // The usage row's lock makes replicas prune one at a time (and appends wait for it).
      const u = await this.q<{ bytes: string }>("SELECT bytes FROM audit_usage WHERE id = 1 FOR UPDATE", [], c);
      const excess = Number(u.rows[0]?.bytes ?? 0) - maxBytes;
      if (excess <= 0) return 0;
      // The oldest events whose sizes, summed in (time, id) order, first cover the excess.
      const r = await this.q<{ n: string }>(
        `WITH victims AS (
           SELECT id FROM (
             SELECT id, size, sum(size) OVER (ORDER BY time, id) AS acc FROM (SELECT id, size, time FROM audit_events ORDER BY time, id LIMIT $2) o
           ) w WHERE acc - size < $1),
         gone AS (DELETE FROM audit_events a USING victims v WHERE a.id = v.id RETURNING a.size)
         UPDATE audit_usage SET bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone) WHERE id = 1 RETURNING (SELECT count(*) FROM gone) AS n`,
        [excess, limit],
        c,
      );
      return Number(r.rows[0]?.n ?? 0);
    });
  }

  /** True when a trivial query answers (health checks). */
  async ping(): Promise<boolean> {
    try {
      await this.q("SELECT 1");
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.changes.close();
    await this.pool.end();
  }
}

/** Thrown inside tx() to roll the transaction back and answer `value` instead. */
class Rollback<T> {
  constructor(readonly value: T) {}
}

async function migrate(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  c.on("error", () => undefined);
  try {
    // Session-level lock: replicas starting together wait here, then find the work done.
    await c.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
    try {
      await runMigrations(PG_MIGRATIONS, {
        applied: async () => {
          await c.query(schemaMigrationsSql("BIGINT"));
          return (await c.query<{ id: number }>("SELECT id FROM schema_migrations")).rows.map((r) => r.id);
        },
        apply: async (m, appliedTime) => {
          await c.query("BEGIN");
          try {
            await c.query(m.sql);
            await c.query("INSERT INTO schema_migrations (id, applied_time) VALUES ($1, $2)", [m.id, appliedTime]);
            await c.query("COMMIT");
          } catch (err) {
            await c.query("ROLLBACK");
            throw err;
          }
        },
      });
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    c.release();
  }
}
