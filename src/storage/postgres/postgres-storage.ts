/**
 * The scale-out back-end: PostgreSQL through a `pg` pool, so several stateless secretd
 * replicas serve one data set. Same contract as SQLite (the conformance suite runs
 * against both): uniqueness per scope by a unique index (INSERT … ON CONFLICT, never
 * check-then-insert), compare-and-set on etag in the UPDATE's WHERE, multi-row reads in
 * one REPEATABLE READ snapshot. A database that cannot be reached answers UNAVAILABLE.
 */
import pg from "pg";
import { SecretdError } from "../../domain/errors.js";
import type { Change } from "../change-feed.js";
import type {
  CreateRequestRow,
  DekReplacement,
  GrantRow,
  LeaseRow,
  ListQuery,
  Scope,
  SecretRow,
  SecretWithVersion,
  Storage,
  VersionKeyRow,
  VersionRow,
} from "../storage.js";
import { PG_MIGRATIONS } from "./migrations.js";
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
}

/** Any advisory-lock key will do as long as every replica uses the same one. */
const MIGRATION_LOCK = 0x5ec7e7d;

interface SecretRecord {
  uid: string;
  tenant: string;
  mesh: string;
  name: string;
  type: string;
  description: string;
  owner: string;
  labels: string;
  annotations: string;
  immutable: boolean;
  version: string;
  etag: string;
  keys: string;
  create_time: string;
  update_time: string;
  expire_time: string | null;
}

interface VersionRecord {
  v_version: string | null;
  v_keys: string | null;
  v_dek: Buffer | null;
  v_payload: Buffer | null;
  v_create_time: string | null;
}

/** A grant row as json_build_object gives it (bigints as JSON numbers). */
interface GrantRecord {
  secret_uid: string;
  subject: string;
  permission: number;
  keys: string;
  expire_time: number | null;
  granted_by: string;
  create_time: number;
}

const SECRET_COLUMNS =
  "s.uid, s.tenant, s.mesh, s.name, s.type, s.description, s.owner, s.labels, s.annotations, s.immutable, s.version, s.etag, s.keys, s.create_time, s.update_time, s.expire_time";


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

function wrap(err: unknown): SecretdError {
  if (err instanceof SecretdError) return err;
  if (isUnavailable(err)) return new SecretdError("UNAVAILABLE", "the database is unreachable", { cause: err });
  if ((err as { code?: unknown }).code === "57014") return new SecretdError("UNAVAILABLE", "the database did not answer in time", { cause: err });
  return new SecretdError("INTERNAL", "database error", { cause: err });
}

function num(v: string | number): number {
  return typeof v === "number" ? v : Number(v);
}

function toSecret(r: SecretRecord): SecretRow {
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
    immutable: r.immutable,
    version: num(r.version),
    etag: r.etag,
    keys: JSON.parse(r.keys) as string[],
    createTime: num(r.create_time),
    updateTime: num(r.update_time),
    expireTime: r.expire_time === null ? undefined : num(r.expire_time),
  };
}

function toGrant(r: GrantRecord): GrantRow {
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

type Queryable = Pick<pg.PoolClient, "query">;

interface LeaseRecord {
  watch_id: string;
  secret_uid: string;
  tenant: string;
  sub: string;
  roles: string;
  revision: string;
  since: string;
  last_seen: string;
  expire_time: string;
  replica: string;
}

function toLease(r: LeaseRecord): LeaseRow {
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
  };
}

type Identity = Pick<SecretRow, "tenant" | "mesh" | "name" | "uid">;

function change(kind: ChangeInput["kind"], s: Identity): ChangeInput {
  return { kind, tenant: s.tenant, mesh: s.mesh, name: s.name, uid: s.uid };
}

export class PostgresStorage implements Storage {
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    readonly changes: PostgresChangeFeed,
  ) {}

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
      return new PostgresStorage(pool, await PostgresChangeFeed.open(pool, url, feedOptions));
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw wrap(err);
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
      await c.query(`BEGIN ISOLATION LEVEL ${isolation}`);
      const out = await fn(c);
      await c.query("COMMIT");
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
   * A writing transaction: fn returns its answer and the changes it made; they get their
   * revisions just before COMMIT, and subscribers hear of them before the answer returns.
   */
  private async write<T>(fn: (c: pg.PoolClient) => Promise<{ value: T; changes: readonly ChangeInput[] }>): Promise<T> {
    let recorded: readonly Change[] = [];
    const value = await this.tx(async (c) => {
      const out = await fn(c);
      recorded = await this.changes.record(c, out.changes);
      return out.value;
    });
    await this.changes.committed(recorded);
    return value;
  }

  private async uidIdentity(c: Queryable, uid: string): Promise<Identity | undefined> {
    const r = await this.q<Identity>("SELECT tenant, mesh, name, uid FROM secrets WHERE uid = $1", [uid], c);
    return r.rows[0];
  }

  private async insertVersion(c: Queryable, v: VersionRow): Promise<void> {
    await this.q(
      "INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time) VALUES ($1, $2, $3, $4, $5, $6)",
      [v.uid, v.version, JSON.stringify(v.keys), Buffer.from(v.dek), Buffer.from(v.payload), v.createTime],
      c,
    );
  }

  async insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists"> {
    type R = "ok" | "exists" | "request-exists";
    return this.write<R>(async (c) => {
      const none = (value: R) => ({ value, changes: [] });
      if (request) {
        const seen = await this.q("SELECT 1 FROM create_requests WHERE tenant = $1 AND request_id = $2", [secret.tenant, request.requestId], c);
        if (seen.rowCount) return none("request-exists");
      }
      const r = await this.q(
        `INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
        ],
        c,
      );
      if (r.rowCount === 0) return none("exists");
      await this.insertVersion(c, version);
      if (request) {
        // Two racing retries with one id: the unique key lets one in; the other rolls back.
        const ins = await this.q(
          `INSERT INTO create_requests (tenant, request_id, secret_uid, fingerprint, create_time) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (tenant, request_id) DO NOTHING`,
          [secret.tenant, request.requestId, secret.uid, request.fingerprint, secret.createTime],
          c,
        );
        if (ins.rowCount === 0) throw new Rollback("request-exists" as const);
      }
      return { value: "ok" as const, changes: [change("secret-created", secret)] };
    });
  }

  async findCreateRequest(tenant: string, requestId: string): Promise<CreateRequestRow | undefined> {
    const r = await this.q<{ request_id: string; secret_uid: string; fingerprint: string }>(
      "SELECT request_id, secret_uid, fingerprint FROM create_requests WHERE tenant = $1 AND request_id = $2",
      [tenant, requestId],
    );
    const row = r.rows[0];
    return row ? { requestId: row.request_id, secretUid: row.secret_uid, fingerprint: row.fingerprint } : undefined;
  }

  /**
   * Secrets of one scope with one version each (0 = current) and their grants, in ONE
   * statement: one snapshot without a transaction, one round trip (GetSecret's hot path).
   */
  private async readMany(scope: Scope, names: readonly string[], version: number): Promise<Map<string, SecretWithVersion>> {
    const r = await this.q<SecretRecord & VersionRecord & { grants: GrantRecord[] }>(
      `SELECT ${SECRET_COLUMNS}, v.version AS v_version, v.keys AS v_keys, v.dek AS v_dek, v.payload AS v_payload, v.create_time AS v_create_time,
         (SELECT COALESCE(json_agg(json_build_object('secret_uid', g.secret_uid, 'subject', g.subject, 'permission', g.permission,
                   'keys', g.keys, 'expire_time', g.expire_time, 'granted_by', g.granted_by, 'create_time', g.create_time)
                 ORDER BY g.subject, g.permission), '[]'::json)
            FROM grants g WHERE g.secret_uid = s.uid) AS grants
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
            };
      out.set(rec.name, { secret: toSecret(rec), version: v, grants: rec.grants.map(toGrant) });
    }
    return out;
  }

  async readSecret(scope: Scope, name: string, version: number): Promise<SecretWithVersion | undefined> {
    return (await this.readMany(scope, [name], version)).get(name);
  }

  async readSecrets(scope: Scope, names: readonly string[]): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
    const found = await this.readMany(scope, names, 0);
    return names.map((n) => found.get(n));
  }

  async listSecrets(scope: Scope, q: ListQuery): Promise<SecretRow[]> {
    const params: unknown[] = [scope.tenant, scope.mesh, q.afterName, q.type ?? null, q.expireBefore ?? null, q.limit];
    let visible = "";
    if (q.visibleTo) {
      params.push(q.visibleTo.owner, [...q.visibleTo.subjects], q.visibleTo.now);
      visible = `AND (s.owner = $7 OR EXISTS (
          SELECT 1 FROM grants g WHERE g.secret_uid = s.uid AND g.subject = ANY($8::text[])
            AND (g.expire_time IS NULL OR g.expire_time > $9)))`;
    }
    const r = await this.q<SecretRecord>(
      `SELECT ${SECRET_COLUMNS} FROM secrets s
       WHERE s.tenant = $1 AND s.mesh = $2 AND s.name > $3 AND ($4::text IS NULL OR s.type = $4)
         AND ($5::bigint IS NULL OR s.expire_time <= $5) ${visible}
       ORDER BY s.name LIMIT $6`,
      params,
    );
    return r.rows.map(toSecret);
  }

  async updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const r = await this.q(
        `UPDATE secrets SET description = $3, labels = $4, annotations = $5, version = $6, etag = $7, keys = $8, update_time = $9, expire_time = $10
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
        ],
        c,
      );
      if (r.rowCount === 0) {
        const e = await this.q("SELECT 1 FROM secrets WHERE uid = $1", [next.uid], c);
        return { value: e.rowCount ? ("conflict" as const) : ("missing" as const), changes: [] };
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
      return { value: e.rowCount ? ("conflict" as const) : ("missing" as const), changes: [] };
    });
  }

  async putGrant(g: GrantRow): Promise<"ok" | "missing"> {
    return this.write(async (c) => {
      // INSERT … SELECT from the secret row: a secret deleted meanwhile inserts nothing.
      const r = await this.q<Identity>(
        `WITH s AS (SELECT uid, tenant, mesh, name FROM secrets WHERE uid = $1),
         ins AS (
           INSERT INTO grants (secret_uid, subject, permission, keys, expire_time, granted_by, create_time)
           SELECT uid, $2, $3, $4, $5, $6, $7 FROM s
           ON CONFLICT (secret_uid, subject, permission) DO UPDATE SET
             keys = excluded.keys, expire_time = excluded.expire_time, granted_by = excluded.granted_by, create_time = excluded.create_time
           RETURNING secret_uid)
         SELECT s.tenant, s.mesh, s.name, s.uid FROM s JOIN ins ON ins.secret_uid = s.uid`,
        [g.secretUid, g.subject, g.level, JSON.stringify(g.keys), g.expireTime ?? null, g.grantedBy, g.createTime],
        c,
      );
      const s = r.rows[0];
      return s ? { value: "ok" as const, changes: [change("grant-put", s)] } : { value: "missing" as const, changes: [] };
    });
  }

  async deleteGrants(secretUid: string, subject: string, level: number | undefined): Promise<number> {
    return this.write(async (c) => {
      const r = await this.q("DELETE FROM grants WHERE secret_uid = $1 AND subject = $2 AND ($3::int IS NULL OR permission = $3)", [secretUid, subject, level ?? null], c);
      const removed = r.rowCount ?? 0;
      const s = removed > 0 ? await this.uidIdentity(c, secretUid) : undefined;
      return { value: removed, changes: s ? [change("grant-revoked", s)] : [] };
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
      let applied = 0;
      const rekeyed = new Set<string>();
      for (const r of replacements) {
        const res = await this.q("UPDATE secret_versions SET dek = $4 WHERE uid = $1 AND version = $2 AND dek = $3", [r.uid, r.version, Buffer.from(r.oldDek), Buffer.from(r.newDek)], c);
        const n = res.rowCount ?? 0;
        applied += n;
        if (n > 0) rekeyed.add(r.uid);
      }
      const changes: ChangeInput[] = [];
      for (const uid of rekeyed) {
        const s = await this.uidIdentity(c, uid);
        if (s) changes.push(change("secret-rekeyed", s));
      }
      return { value: applied, changes };
    });
  }

  async putLeases(leases: readonly LeaseRow[]): Promise<void> {
    if (leases.length === 0) return;
    // A lease on a secret that no longer exists is skipped (INSERT … SELECT from secrets).
    await this.q(
      `INSERT INTO consumer_leases (watch_id, secret_uid, tenant, sub, roles, revision, since, last_seen, expire_time, replica)
       SELECT l.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
         AS l (watch_id, secret_uid, tenant, sub, roles, revision, since, last_seen, expire_time, replica)
       WHERE EXISTS (SELECT 1 FROM secrets s WHERE s.uid = l.secret_uid)
       ON CONFLICT (watch_id, secret_uid) DO UPDATE SET tenant = excluded.tenant, sub = excluded.sub, roles = excluded.roles,
         revision = excluded.revision, since = excluded.since, last_seen = excluded.last_seen, expire_time = excluded.expire_time, replica = excluded.replica`,
      [
        leases.map((l) => l.watchId),
        leases.map((l) => l.secretUid),
        leases.map((l) => l.tenant),
        leases.map((l) => l.sub),
        leases.map((l) => JSON.stringify(l.roles)),
        leases.map((l) => l.revision),
        leases.map((l) => l.since),
        leases.map((l) => l.lastSeen),
        leases.map((l) => l.expireTime),
        leases.map((l) => l.replica),
      ],
    );
  }

  async deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void> {
    if (secretUids === undefined) await this.q("DELETE FROM consumer_leases WHERE watch_id = $1", [watchId]);
    else await this.q("DELETE FROM consumer_leases WHERE watch_id = $1 AND secret_uid = ANY($2::text[])", [watchId, [...secretUids]]);
  }

  async renewLeases(replica: string, now: number, expireTime: number, revisions: ReadonlyMap<string, string>): Promise<number> {
    return this.tx(async (c) => {
      await this.q("DELETE FROM consumer_leases WHERE expire_time <= $1", [now], c);
      if (revisions.size > 0) {
        await this.q(
          `UPDATE consumer_leases l SET revision = r.revision FROM unnest($1::text[], $2::text[]) AS r (watch_id, revision)
           WHERE l.watch_id = r.watch_id AND l.replica = $3`,
          [[...revisions.keys()], [...revisions.values()], replica],
          c,
        );
      }
      const r = await this.q("UPDATE consumer_leases SET last_seen = $2, expire_time = $3 WHERE replica = $1", [replica, now, expireTime], c);
      return r.rowCount ?? 0;
    });
  }

  async deleteReplicaLeases(replica: string): Promise<void> {
    await this.q("DELETE FROM consumer_leases WHERE replica = $1", [replica]);
  }

  async listLeases(secretUid: string, now: number): Promise<LeaseRow[]> {
    const r = await this.q<LeaseRecord>("SELECT * FROM consumer_leases WHERE secret_uid = $1 AND expire_time > $2 ORDER BY since, watch_id", [secretUid, now]);
    return r.rows.map(toLease);
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
      await c.query("CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, applied_time BIGINT NOT NULL)");
      const done = new Set((await c.query<{ id: number }>("SELECT id FROM schema_migrations")).rows.map((r) => r.id));
      for (const m of PG_MIGRATIONS) {
        if (done.has(m.id)) continue;
        await c.query("BEGIN");
        try {
          await c.query(m.sql);
          await c.query("INSERT INTO schema_migrations (id, applied_time) VALUES ($1, $2)", [m.id, Date.now()]);
          await c.query("COMMIT");
        } catch (err) {
          await c.query("ROLLBACK");
          throw err;
        }
      }
    } finally {
      await c.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]);
    }
  } finally {
    c.release();
  }
}
