/**
 * The scale-out back-end: PostgreSQL through a `pg` pool, so several stateless secretd
 * replicas serve one data set. Same contract as SQLite (the conformance suite runs
 * against both), and the same statements and rules (storage/sql/), run asynchronously:
 * uniqueness per scope by a unique index (INSERT … ON CONFLICT, never check-then-insert),
 * compare-and-set on etag in the UPDATE's WHERE, multi-row reads in one REPEATABLE READ
 * snapshot. A database that cannot be reached answers UNAVAILABLE.
 */
import pg from "pg";
import { SecretdError } from "../../errors.js";
import type {
  AuditQuery,
  AuditRow,
  DueSecret,
  ScheduleRow,
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
  RotationOutcome,
  RotationRow,
  RowCheck,
  Scope,
  SecretRow,
  SecretWithVersion,
  Storage,
  StoredAuditRow,
  VersionKeyRow,
  VersionRow,
  WatchAck,
  WatchAckView,
  WatchLease,
  WatchSends,
} from "../storage.js";
import { ROTATION_COLUMNS, rotationValues, toRotation, type RotationRecord } from "../sql/rotation-rows.js";
import * as R from "../sql/rows.js";
import { SCHEDULE_SQL, toDue, toSchedule, type DueRecord, type ScheduleRecord } from "../sql/schedule-statements.js";
import { SQL, listAuditSql, listSecretsSql, secretWithVersionSql } from "../sql/statements.js";
import { raw, sql, type Sql } from "../sql/sql.js";
import { ALL_ROWS, Rekeyed, assertBackfillApplied, auditBounds, backfillGate, conflictOrMissing, dekSwap, grantGuard, macStatement } from "../sql/write-rules.js";
import { ReadCache } from "../read-cache.js";
import { ReadFlights } from "../read-flights.js";
import { POSTGRES_FEED_DEFAULTS, PostgresChangeFeed, type ChangeInput, type PostgresFeedOptions } from "./postgres-change-feed.js";
import { postgresAuditWrites } from "./postgres-audit-writes.js";
import { openError, wrap } from "./postgres-errors.js";
import { boolArray, byteaArray as B, int8Array as I, textArray as T } from "./pg-binary-arrays.js";
import { migrate } from "./postgres-migrate.js";

export { noPasswordError, wrap } from "./postgres-errors.js";

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

/** Every grant of the row's secret as one JSON array (bigints as JSON numbers). */
const GRANTS_JSON = `(SELECT COALESCE(json_agg(json_build_object('secret_uid', g.secret_uid, 'subject', g.subject, 'permission', g.permission,
           'keys', g.keys, 'expire_time', g.expire_time, 'granted_by', g.granted_by, 'create_time', g.create_time)
         ORDER BY g.subject, g.permission), '[]'::json)
    FROM grants g WHERE g.secret_uid = s.uid)`;

/** PostgreSQL's renderings of the shared reads: the secrets' grants come along in the same statement. */
const READ_MANY = secretWithVersionSql(sql`${raw(`, ${GRANTS_JSON} AS grants`)}`);
const LIST = listSecretsSql(false);
/** A non-owner sees a row through a grant: its grants come along (one snapshot), so the row-MAC check can decide visibility again on the authenticated set. */
const LIST_VISIBLE = listSecretsSql(true, sql`, CASE WHEN s.owner = ${"owner"} THEN NULL ELSE ${raw(GRANTS_JSON)} END AS grants`);
const LIST_AUDIT = { time: listAuditSql("time"), sub: listAuditSql("sub"), name: listAuditSql("name") };

type Queryable = Pick<pg.PoolClient, "query">;
type Binds = Record<string, unknown>;

function change(kind: ChangeInput["kind"], s: R.Identity): ChangeInput {
  return { kind, tenant: s.tenant, mesh: s.mesh, name: s.name, uid: s.uid };
}

/**
 * insertSecret's one statement ($1–$18 the secret row, $19–$24 its first version, $25 the
 * change's time; with a request, $26–$29 its sub, id, fingerprint and MAC). Casts give
 * the parameters their types (INSERT … SELECT does not take them from the columns).
 * `mark` is tx()'s SET LOCAL secretd.writer: the main SELECT reads it, so it is set
 * before the statement ends and migration 9's statement triggers run.
 */
function createSql(withRequest: boolean): string {
  return `
  WITH mark AS (SELECT set_config('secretd.writer', 'on', true) AS on),
  ${withRequest ? "seen AS (SELECT 1 FROM create_requests WHERE tenant = $2::text AND sub = $26::text AND request_id = $27::text)," : ""}
  s AS (
    INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time, mac, grants_mac)
    SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::boolean, $11::bigint, $12::text, $13::text, $14::bigint, $15::bigint, $16::bigint, $17::bytea, $18::bytea
    ${withRequest ? "WHERE NOT EXISTS (SELECT 1 FROM seen)" : ""}
    ON CONFLICT (tenant, mesh, name) DO NOTHING
    RETURNING uid),
  v AS (
    INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time, mac)
    SELECT s.uid, $19::bigint, $20::text, $21::bytea, $22::bytea, $23::bigint, $24::bytea FROM s),
  ${withRequest ? "r AS (INSERT INTO create_requests (tenant, sub, request_id, secret_uid, fingerprint, create_time, mac) SELECT $2::text, $26::text, $27::text, s.uid, $28::text, $14::bigint, $29::bytea FROM s)," : ""}
  c AS (
    INSERT INTO changes (xid, pos, kind, tenant, mesh, name, uid, time)
    SELECT pg_current_xact_id(), 1, 'secret-created', $2::text, $3::text, $4::text, s.uid, $25::bigint FROM s
    RETURNING xid::text AS xid)
  SELECT ${withRequest ? "EXISTS (SELECT 1 FROM seen)" : "false"} AS seen, (SELECT xid FROM c) AS xid FROM mark`;
}
const CREATE = createSql(false);
const CREATE_WITH_REQUEST = createSql(true);

/**
 * Concurrent creates in ONE statement (one transaction, one COMMIT, one feed change each
 * at its place in the batch): $1–$24 are the columns of createSql's $1–$24 as arrays, one
 * element per create; $25 the changes' time; $26–$29 each create's request (sub, id,
 * fingerprint, MAC; NULL without one). A name taken (by another replica, or earlier in
 * the batch) is skipped by ON CONFLICT; a create whose request id its caller already used
 * (a committed create_requests row) is not written, as createSql's `seen`. `created`
 * names the uids that went in, `seen` those refused for their request id. A request id
 * that a racing transaction (or the same batch) records first fails the statement on
 * create_requests_pkey: nothing of the batch is written (runBatch then retries its
 * creates one statement each, so that racing retry fails alone).
 */
const CREATE_BATCH = `
  WITH mark AS (SELECT set_config('secretd.writer', 'on', true) AS on),
  u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], $11::bigint[], $12::text[],
      $13::text[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bytea[], $18::bytea[], $19::bigint[], $20::text[], $21::bytea[], $22::bytea[], $23::bigint[], $24::bytea[],
      $26::text[], $27::text[], $28::text[], $29::bytea[])
      WITH ORDINALITY AS u (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time, mac, grants_mac,
        v_version, v_keys, dek, payload, v_create_time, v_mac, r_sub, r_id, r_fingerprint, r_mac, ord)),
  seen AS (SELECT u.uid FROM u JOIN create_requests q ON q.tenant = u.tenant AND q.sub = u.r_sub AND q.request_id = u.r_id),
  s AS (
    INSERT INTO secrets (uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time, mac, grants_mac)
    SELECT uid, tenant, mesh, name, type, description, owner, labels, annotations, immutable, version, etag, keys, create_time, update_time, expire_time, mac, grants_mac FROM u
    WHERE u.uid NOT IN (SELECT uid FROM seen)
    ON CONFLICT (tenant, mesh, name) DO NOTHING
    RETURNING uid),
  v AS (
    INSERT INTO secret_versions (uid, version, keys, dek, payload, create_time, mac)
    SELECT u.uid, u.v_version, u.v_keys, u.dek, u.payload, u.v_create_time, u.v_mac FROM u JOIN s ON s.uid = u.uid),
  r AS (
    INSERT INTO create_requests (tenant, sub, request_id, secret_uid, fingerprint, create_time, mac)
    SELECT u.tenant, u.r_sub, u.r_id, u.uid, u.r_fingerprint, u.create_time, u.r_mac FROM u JOIN s ON s.uid = u.uid WHERE u.r_id IS NOT NULL),
  c AS (
    INSERT INTO changes (xid, pos, kind, tenant, mesh, name, uid, time)
    SELECT pg_current_xact_id(), row_number() OVER (ORDER BY u.ord), 'secret-created', u.tenant, u.mesh, u.name, u.uid, $25::bigint FROM u JOIN s ON s.uid = u.uid
    RETURNING xid::text AS xid)
  SELECT (SELECT coalesce(array_agg(uid), '{}') FROM s) AS created, (SELECT coalesce(array_agg(uid), '{}') FROM seen) AS seen, (SELECT xid FROM c LIMIT 1) AS xid FROM mark`;

/** Creates in one batch at most; batches in flight per replica at most (the rest wait for a slot). */
const BATCH_MAX = 64;
const BATCHES_IN_FLIGHT = 2;

type CreateOutcome = "ok" | "exists" | "request-exists";

/** A racing retry with the same request id committed its create_requests row first (or is earlier in the same statement). */
function requestTaken(err: unknown): boolean {
  return (err as { code?: unknown }).code === "23505" && (err as { constraint?: unknown }).constraint === "create_requests_pkey";
}

interface PendingCreate {
  readonly secret: SecretRow;
  readonly version: VersionRow;
  readonly request: CreateRequestRow | undefined;
  readonly resolve: (r: CreateOutcome) => void;
  readonly reject: (err: unknown) => void;
}

export class PostgresStorage implements Storage {
  private closed = false;
  /** Hot secrets without SQL; see read-cache.ts for how it stays coherent with the feed. */
  private readonly cache = new ReadCache();
  /** Cache misses of the same rows at the same cache epoch share one SELECT. */
  private readonly flights = new ReadFlights<Map<string, SecretWithVersion>>();
  /** Creates waiting for a batch (insertSecret). */
  private readonly waitingCreates: PendingCreate[] = [];
  private readonly batchesInFlight = new Set<Promise<void>>();
  /** The feed's LISTEN connection the cached entries were heard under (see cacheLive). */
  private cacheListening = 0;
  private readonly auditWrites = postgresAuditWrites(
    { q: (text, values, on) => this.q(text, values, on), tx: (fn) => this.tx(fn) },
    (seconds) => this.onCommit(seconds),
  );

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

  /** Runs one shared statement (pg's rendering, its values in order). */
  private run<T extends pg.QueryResultRow = pg.QueryResultRow>(s: Sql, binds: Binds = {}, on: Queryable = this.pool): Promise<pg.QueryResult<T>> {
    return this.q<T>(s.pg, s.values(binds), on);
  }

  private async one<T extends pg.QueryResultRow>(s: Sql, binds: Binds, on: Queryable = this.pool): Promise<T | undefined> {
    return (await this.run<T>(s, binds, on)).rows[0];
  }

  private async count(s: Sql, binds: Binds, on: Queryable = this.pool): Promise<number> {
    return (await this.run(s, binds, on)).rowCount ?? 0;
  }

  /** CreateSecret's write: concurrent creates, with a request id or without, go together (startBatch). */
  async insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<CreateOutcome> {
    if (this.closed) throw new SecretdError("UNAVAILABLE", "storage is closed");
    return new Promise((resolve, reject) => {
      this.waitingCreates.push({ secret, version, request, resolve, reject });
      this.startBatch();
    });
  }

  /**
   * One create as ONE statement in its own transaction (#29 item 1's budget): one round
   * trip and one COMMIT instead of BEGIN, three or four INSERTs, the feed's INSERT and
   * COMMIT (six round trips, each a wake-up of this process and of a backend on a 2-core
   * box). Same rules as a transaction: the name's unique key (ON CONFLICT waits for a
   * racing create, then does nothing), a retry's create_requests row seen first, and a
   * racing retry with the same id fails the whole statement on that table's key (23505):
   * nothing of it is written. The change row is the feed's (record()'s shape: this
   * transaction's id, position 1). Used when a batch collided on a request id.
   */
  private async insertOne(secret: SecretRow, version: VersionRow, request: CreateRequestRow | undefined): Promise<CreateOutcome> {
    const started = performance.now();
    const values: unknown[] = [
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
      R.blob(secret.mac),
      R.blob(secret.grantsMac),
      version.version,
      JSON.stringify(version.keys),
      Buffer.from(version.dek),
      Buffer.from(version.payload),
      version.createTime,
      R.blob(version.mac),
      Date.now(),
    ];
    if (request) values.push(request.sub, request.requestId, request.fingerprint, R.blob(request.mac));
    let row: { seen: boolean; xid: string | null };
    try {
      const r = await this.pool.query<{ seen: boolean; xid: string | null }>({ name: request ? "secretd-create-request" : "secretd-create", text: request ? CREATE_WITH_REQUEST : CREATE, values });
      row = r.rows[0]!;
    } catch (err) {
      if (requestTaken(err)) return "request-exists";
      throw wrap(err);
    }
    if (row.seen) return "request-exists";
    if (row.xid === null) return this.notCreated(secret, request);
    this.onCommit((performance.now() - started) / 1000);
    await this.changes.committed(row.xid);
    return "ok";
  }

  /**
   * A create whose name was taken: by a racing retry with the same request id, maybe (ON
   * CONFLICT waited for its commit, and this new statement, READ COMMITTED, sees its
   * create_requests row), else by another create.
   */
  private async notCreated(secret: SecretRow, request: CreateRequestRow | undefined): Promise<CreateOutcome> {
    if (request) {
      const raced = await this.q("SELECT 1 FROM create_requests WHERE tenant = $1 AND sub = $2 AND request_id = $3", [secret.tenant, request.sub, request.requestId]);
      if (raced.rowCount) return "request-exists";
    }
    return "exists";
  }

  /**
   * Group commit of creates: while BATCHES_IN_FLIGHT batches are in
   * flight, concurrent creates wait and go together in the next (up to BATCH_MAX): one
   * statement, one COMMIT and one fsync for all of them instead of one each. Every caller
   * is answered with its own outcome after that COMMIT, once the feed has published the
   * batch's changes (as a single create is); a failed batch fails each of its callers.
   * A batch that collided on a request id (a racing retry, here or on another replica)
   * wrote nothing: its creates are retried one statement each, so only that retry fails
   * (with "request-exists", answered as the first create was).
   */
  private startBatch(): void {
    if (this.closed) {
      const e = new SecretdError("UNAVAILABLE", "storage is closed");
      for (const p of this.waitingCreates.splice(0)) p.reject(e);
      return;
    }
    if (this.batchesInFlight.size >= BATCHES_IN_FLIGHT || this.waitingCreates.length === 0) return;
    const batch = this.waitingCreates.splice(0, BATCH_MAX);
    const flight: Promise<void> = this.runBatch(batch).finally(() => {
      this.batchesInFlight.delete(flight);
      this.startBatch();
    });
    this.batchesInFlight.add(flight);
  }

  private async runBatch(batch: readonly PendingCreate[]): Promise<void> {
    try {
      const started = performance.now();
      // Every batch inserts its names in one order, so two batches racing on the same
      // names (on two replicas) wait for each other's row one way and never deadlock.
      const key = (p: PendingCreate): string => `${p.secret.tenant}\u0000${p.secret.mesh}\u0000${p.secret.name}`;
      const sorted = [...batch].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      const col = <T>(f: (p: PendingCreate) => T): T[] => sorted.map(f);
      const r = await this.pool.query<{ created: string[]; seen: string[]; xid: string | null }>({
        name: "secretd-create-batch",
        text: CREATE_BATCH,
        // Binary arrays (pg-binary-arrays.ts): no text literal to render here and parse there.
        values: [
          T(col((p) => p.secret.uid)),
          T(col((p) => p.secret.tenant)),
          T(col((p) => p.secret.mesh)),
          T(col((p) => p.secret.name)),
          T(col((p) => p.secret.type)),
          T(col((p) => p.secret.description)),
          T(col((p) => p.secret.owner)),
          T(col((p) => JSON.stringify(p.secret.labels))),
          T(col((p) => JSON.stringify(p.secret.annotations))),
          boolArray(col((p) => p.secret.immutable)),
          I(col((p) => p.secret.version)),
          T(col((p) => p.secret.etag)),
          T(col((p) => JSON.stringify(p.secret.keys))),
          I(col((p) => p.secret.createTime)),
          I(col((p) => p.secret.updateTime)),
          I(col((p) => p.secret.expireTime ?? null)),
          B(col((p) => p.secret.mac)),
          B(col((p) => p.secret.grantsMac)),
          I(col((p) => p.version.version)),
          T(col((p) => JSON.stringify(p.version.keys))),
          B(col((p) => p.version.dek)),
          B(col((p) => p.version.payload)),
          I(col((p) => p.version.createTime)),
          B(col((p) => p.version.mac)),
          Date.now(),
          T(col((p) => p.request?.sub ?? null)),
          T(col((p) => p.request?.requestId ?? null)),
          T(col((p) => p.request?.fingerprint ?? null)),
          B(col((p) => p.request?.mac)),
        ],
      });
      const { created, seen, xid } = r.rows[0]!;
      this.onCommit((performance.now() - started) / 1000);
      await this.changes.committed(xid ?? undefined);
      const ok = new Set(created);
      const refused = new Set(seen);
      for (const p of batch) {
        if (ok.has(p.secret.uid)) p.resolve("ok");
        else if (refused.has(p.secret.uid)) p.resolve("request-exists");
        else this.notCreated(p.secret, p.request).then(p.resolve, (e: unknown) => p.reject(wrap(e)));
      }
    } catch (err) {
      if (requestTaken(err)) {
        await Promise.all(batch.map((p) => this.insertOne(p.secret, p.version, p.request).then(p.resolve, (e: unknown) => p.reject(wrap(e)))));
        return;
      }
      const e = wrap(err);
      for (const p of batch) p.reject(e);
    }
  }

  async findCreateRequest(tenant: string, sub: string, requestId: string): Promise<CreateRequestRow | undefined> {
    const r = await this.one<R.RequestRecord>(SQL.findRequest, { tenant, sub, request_id: requestId });
    return r && R.toRequest(r);
  }

  /** Secrets of one scope with one version each (0 = current) and their grants, in ONE statement: one snapshot, one round trip. */
  private async readMany(scope: Scope, names: readonly string[], version: number): Promise<Map<string, SecretWithVersion>> {
    const r = await this.run<R.SecretRecord & R.JoinedVersionRecord & R.LatestVersion & { grants: R.GrantRecord[] }>(READ_MANY, { tenant: scope.tenant, mesh: scope.mesh, names: [...names], version });
    return new Map(r.rows.map((rec) => [rec.name, R.toSecretWithVersion(rec, rec.grants)]));
  }

  /** readMany, shared with the same read in flight while the cache is live (read-flights.ts); each caller gets its own read otherwise. */
  private readShared(live: boolean, scope: Scope, names: readonly string[], version: number, since: number): Promise<Map<string, SecretWithVersion>> {
    if (!live) return this.readMany(scope, names, version);
    return this.flights.run(JSON.stringify([scope.tenant, scope.mesh, version, names]), since, () => this.readMany(scope, names, version));
  }

  async readSecret(scope: Scope, name: string, version: number, fresh = false): Promise<SecretWithVersion | undefined> {
    if (fresh) return (await this.readMany(scope, [name], version)).get(name);
    const live = this.cacheLive();
    const hit = live ? this.cache.get(scope, name, version) : undefined;
    if (hit !== undefined) return hit;
    const since = this.cache.epoch;
    const found = (await this.readShared(live, scope, [name], version, since)).get(name);
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
    const found = await this.readShared(live, scope, names, 0, since);
    return names.map((n) => {
      const f = found.get(n);
      const row = f !== undefined && live ? this.cache.put(scope, n, 0, f, since) : f;
      onRow?.(n, row);
      return row;
    });
  }

  async listSecrets(scope: Scope, q: ListQuery): Promise<ListedSecret[]> {
    const params = { tenant: scope.tenant, mesh: scope.mesh, after: q.afterName, type: q.type ?? null, expire_before: q.expireBefore ?? null, limit: q.limit };
    const v = q.visibleTo;
    const r = await (v ? this.run(LIST_VISIBLE, { ...params, owner: v.owner, subjects: [...v.subjects], now: v.now }) : this.run(LIST, params));
    return (r.rows as Array<R.SecretRecord & R.LatestVersion & { grants?: R.GrantRecord[] | null }>).map((rec): ListedSecret => {
      const listed = { ...R.toSecret(rec), latestVersion: R.num(rec.latest_version ?? 0) };
      return rec.grants === undefined || rec.grants === null ? listed : { ...listed, grants: rec.grants.map(R.toGrant) };
    });
  }

  /** A compare-and-set that matched no row: "conflict" when the row is there, "missing" when gone. */
  private async notApplied(c: Queryable, uid: string): Promise<{ value: "conflict" | "missing"; changes: [] }> {
    return { value: conflictOrMissing((await this.one(SQL.identity, { uid }, c)) !== undefined), changes: [] };
  }

  async updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const value = await this.applyUpdate(c, next, version, expectEtag, maxVersions);
      return { value, changes: value === "ok" ? [change("secret-updated", next)] : [] };
    });
  }

  /** updateSecret's writes, inside the caller's transaction (RotateSecret's too). */
  private async applyUpdate(c: Queryable, next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    if ((await this.count(SQL.updateSecret, { ...R.secretBinds(next), expect_etag: expectEtag }, c)) === 0) return (await this.notApplied(c, next.uid)).value;
    await this.run(SQL.insertVersion, R.versionBinds(version), c);
    await this.run(SQL.pruneVersions, { uid: next.uid, version: version.version - maxVersions }, c);
    return "ok";
  }

  async deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const gone = await this.one<R.Identity>(SQL.deleteSecret, { uid, etag: etag ?? null }, c);
      if (gone) return { value: "ok" as const, changes: [change("secret-deleted", gone)] };
      return this.notApplied(c, uid);
    });
  }

  /** The secret row, locked for this transaction (see SQL.grantsMacOf). */
  private lockGrants(c: Queryable, uid: string): Promise<(R.Identity & { grants_mac: Buffer | null }) | undefined> {
    return this.one(SQL.grantsMacOf, { uid }, c);
  }

  async putGrant(g: GrantRow, guard?: GrantsMacGuard): Promise<"ok" | "missing" | "conflict"> {
    return this.write(async (c) => {
      const s = await this.lockGrants(c, g.secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return { value: decision === "write" ? ("missing" as const) : decision, changes: [] };
      await this.run(SQL.putGrant, R.grantBinds(g), c);
      if (guard) await this.run(SQL.setGrantsMac, { uid: g.secretUid, next: Buffer.from(guard.next) }, c);
      return { value: "ok" as const, changes: [change("grant-put", s)] };
    });
  }

  async deleteGrants(secretUid: string, subject: string, level: number | undefined, guard?: GrantsMacGuard): Promise<number | "conflict"> {
    return this.write(async (c) => {
      const none = (value: number | "conflict") => ({ value, changes: [] });
      const s = await this.lockGrants(c, secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return none(decision === "conflict" ? "conflict" : 0);
      const removed = await this.count(SQL.deleteGrants, { uid: secretUid, subject, level: level ?? null }, c);
      if (removed === 0) return none(0);
      if (guard) await this.run(SQL.setGrantsMac, { uid: secretUid, next: Buffer.from(guard.next) }, c);
      return { value: removed, changes: [change("grant-revoked", s)] };
    });
  }

  async readGrants(secretUid: string): Promise<GrantSet | undefined> {
    const r = await this.q<{ grants_mac: Buffer | null; grants: R.GrantRecord[] }>(`SELECT s.grants_mac, ${GRANTS_JSON} AS grants FROM secrets s WHERE s.uid = $1`, [secretUid]);
    const row = r.rows[0];
    return row ? { grants: row.grants.map(R.toGrant), grantsMac: row.grants_mac ?? undefined } : undefined;
  }

  /** Secrets after `afterUid` with every MAC-covered row, read in the caller's snapshot. */
  private async macRowsAfter(c: Queryable, afterUid: string, limit: number): Promise<MacRows[]> {
    const secrets = (await this.run<R.SecretRecord>(SQL.secretsByUid, { after: afterUid, limit }, c)).rows;
    if (secrets.length === 0) return [];
    const uids = { uids: secrets.map((s) => s.uid) };
    const [grants, versions, requests] = [
      await this.run<R.GrantRecord>(SQL.grantsOfMany, uids, c),
      await this.run<R.VersionMetaRecord>(SQL.versionMetasOfMany, uids, c),
      await this.run<R.RequestRecord>(SQL.requestsOfMany, uids, c),
    ];
    return R.toMacRows(secrets, grants.rows, versions.rows, requests.rows);
  }

  async listMacRows(afterUid: string, limit: number): Promise<MacRows[]> {
    return this.tx((c) => this.macRowsAfter(c, afterUid, limit), "REPEATABLE READ");
  }

  /** Inside the caller's write transaction: each MAC compare-and-set, then one "secret-rekeyed" change per secret re-keyed. */
  private async applyMacs(c: Queryable, replacements: readonly MacReplacement[]): Promise<{ value: number; changes: ChangeInput[] }> {
    const touched = new Rekeyed();
    for (const r of replacements) {
      const m = macStatement(r);
      touched.note(m.uid, await this.count(m.sql, m.binds, c));
    }
    return { value: touched.applied, changes: await this.rekeyedChanges(c, touched) };
  }

  private async rekeyedChanges(c: Queryable, rekeyed: Rekeyed): Promise<ChangeInput[]> {
    const changes: ChangeInput[] = [];
    for (const uid of rekeyed.uids) {
      const s = await this.one<R.Identity>(SQL.identity, { uid }, c);
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
      const gate = backfillGate(true, (await this.one<{ any: boolean }>(SQL.anyMac, {}, c))!.any);
      if (gate !== "backfill") return { value: gate, changes: [] };
      const replacements = compute(await this.macRowsAfter(c, "", ALL_ROWS));
      const out = await this.applyMacs(c, replacements);
      assertBackfillApplied(out.value, replacements);
      await this.run(SQL.clearBackfill, {}, c);
      return out;
    });
  }

  async listVersionKeys(afterUid: string, afterVersion: number, limit: number): Promise<VersionKeyRow[]> {
    return (await this.run<R.VersionKeyRecord>(SQL.versionKeys, { uid: afterUid, version: afterVersion, limit })).rows.map(R.toVersionKey);
  }

  async kekIdsInUse(): Promise<string[]> {
    const r = await this.q<{ id: string }>("SELECT DISTINCT encode(substring(dek from 3 for get_byte(dek, 1)), 'escape') AS id FROM secret_versions WHERE length(dek) > 2");
    return r.rows.map((x) => x.id);
  }

  async replaceDeks(replacements: readonly DekReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.write(async (c) => {
      const rekeyed = new Rekeyed();
      for (const r of replacements) rekeyed.note(r.uid, await this.count(SQL.replaceDek, dekSwap(r), c));
      return { value: rekeyed.applied, changes: await this.rekeyedChanges(c, rekeyed) };
    });
  }

  async openReplica(replica: string, hb: Heartbeat): Promise<void> {
    await this.run(SQL.openReplica, { replica, now: hb.now, expire_time: hb.expireTime });
  }

  async putLeases(lease: WatchLease, secretUids: readonly string[], now: number): Promise<boolean> {
    return this.tx(async (c) => {
      if ((await this.one(SQL.replicaLive, { replica: lease.replica, now }, c)) === undefined) return false;
      await this.run(SQL.putWatch, R.watchBinds(lease), c);
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
      await this.run(SQL.deleteWatch, { watch_id: watchId });
      return;
    }
    await this.tx(async (c) => {
      await this.q("DELETE FROM consumer_watch_sources WHERE watch_id = $1 AND secret_uid = ANY($2::text[])", [watchId, [...secretUids]], c);
      await this.run(SQL.deleteWatchIfEmpty, { watch_id: watchId }, c);
    });
  }

  async renewLeases(replica: string, hb: Heartbeat, revisions: ReadonlyMap<string, string>): Promise<number> {
    const written = await this.tx(async (c) => {
      let n = await this.count(SQL.heartbeat, { replica, now: hb.now, expire_time: hb.expireTime }, c);
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
    // Dead replicas' rows after the heartbeat's own commit: a clash with another replica's pruning never fails it.
    try {
      await this.run(SQL.pruneDeadWatches, { now: hb.now });
      await this.run(SQL.pruneDeadReplicas, { now: hb.now });
    } catch {
      // Pruning is garbage collection: dead leases never count; the next renewal goes on.
    }
    return written;
  }

  async deleteReplicaLeases(replica: string): Promise<void> {
    await this.run(SQL.endReplica, { replica });
  }

  async listLeases(secretUid: string, now: number): Promise<LeaseRow[]> {
    return (await this.run<R.LeaseRecord>(SQL.listLeases, { uid: secretUid, now })).rows.map(R.toLease);
  }

  async recordSent(sends: readonly WatchSends[]): Promise<void> {
    if (sends.length === 0) return;
    await this.q(
      `UPDATE consumer_watches w SET revision = r.revision, sent = r.sent
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r (watch_id, replica, revision, sent)
       WHERE w.watch_id = r.watch_id AND w.replica = r.replica`,
      [sends.map((s) => s.watchId), sends.map((s) => s.replica), sends.map((s) => s.sent[s.sent.length - 1]?.revision ?? ""), sends.map((s) => R.sentJson(s.sent))],
    );
  }

  async readWatch(watchId: string, now: number): Promise<WatchAckView | undefined> {
    const row = await this.one<R.WatchAckRecord>(SQL.readWatch, { watch_id: watchId, now });
    return row === undefined ? undefined : R.toWatchAckView(row);
  }

  async recordAck(watchId: string, ack: WatchAck): Promise<boolean> {
    return (await this.count(SQL.watchAck, { watch_id: watchId, seq: ack.seq, revision: ack.revision, time: ack.time, applied: R.sourcesJson(ack.applied) })) > 0;
  }

  async appendAudit(events: readonly AuditRow[]): Promise<void> {
    await this.auditWrites.append(events);
  }

  async listAudit(tenant: string, q: AuditQuery): Promise<StoredAuditRow[]> {
    const b = auditBounds(q);
    return (await this.run<R.AuditRecord>(LIST_AUDIT[b.by], { tenant, ...b, after_time: b.afterTime, after_id: b.afterId })).rows.map(R.toAudit);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    return this.auditWrites.prune(before, limit);
  }

  async pruneAuditBytes(maxBytes: number, limit: number): Promise<number> {
    return this.auditWrites.pruneBytes(maxBytes, limit);
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

  async rotateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    type R = "ok" | "missing" | "conflict" | { readonly running: RotationRow };
    return this.write<R>(async (c) => {
      // The secret's row lock orders rotations of one secret across replicas: the second sees the first's record.
      await this.q("SELECT 1 FROM secrets WHERE uid = $1 FOR UPDATE", [next.uid], c);
      const running = await this.q<RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = $1 AND state IN (1, 2, 6)`, [next.uid], c);
      if (running.rows[0] !== undefined) return { value: { running: toRotation(running.rows[0]) }, changes: [] };
      const updated = await this.applyUpdate(c, next, version, expectEtag, maxVersions);
      if (updated !== "ok") return { value: updated, changes: [] };
      // The previous version an earlier rotation kept (NEVER) loses its stage, and is retired.
      const kept = await this.q<{ previous_version: string }>(
        "UPDATE rotations SET previous_readable = FALSE WHERE secret_uid = $1 AND previous_readable RETURNING previous_version",
        [next.uid],
        c,
      );
      const destroy = kept.rows.map((r) => R.num(r.previous_version)).filter((v) => v !== rotation.previousVersion);
      if (!rotation.previousReadable) destroy.push(rotation.previousVersion);
      const values = rotationValues(rotation, (b) => b);
      await this.q(`INSERT INTO rotations (${ROTATION_COLUMNS}) VALUES (${values.map((_, i) => `$${i + 1}`).join(", ")})`, values, c);
      if (destroy.length > 0) await this.q("DELETE FROM secret_versions WHERE uid = $1 AND version = ANY($2::bigint[])", [next.uid, destroy], c);
      return { value: "ok" as const, changes: [change("secret-updated", next)] };
    });
  }

  async beginRotation(version: VersionRow, expectEtag: string, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    type R = "ok" | "missing" | "conflict" | { readonly running: RotationRow };
    return this.write<R>(async (c) => {
      // The secret's row lock orders rotations of one secret across replicas, as rotateSecret.
      const head = await this.q<{ etag: string; version: string }>("SELECT etag, version FROM secrets WHERE uid = $1 FOR UPDATE", [rotation.secretUid], c);
      const running = await this.q<RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = $1 AND state IN (1, 2, 6)`, [rotation.secretUid], c);
      if (running.rows[0] !== undefined) return { value: { running: toRotation(running.rows[0]) }, changes: [] };
      const h = head.rows[0];
      if (h === undefined) return { value: "missing", changes: [] };
      if (h.etag !== expectEtag || version.version !== R.num(h.version) + 1) return { value: "conflict", changes: [] };
      await this.run(SQL.insertVersion, R.versionBinds(version), c);
      // A finished record of this version number (a discarded attempt's) gives way to the new one.
      await this.q("DELETE FROM rotations WHERE secret_uid = $1 AND version = $2 AND state NOT IN (1, 2, 6)", [rotation.secretUid, rotation.version], c);
      const values = rotationValues(rotation, (b) => b);
      await this.q(`INSERT INTO rotations (${ROTATION_COLUMNS}) VALUES (${values.map((_, i) => `$${i + 1}`).join(", ")})`, values, c);
      return { value: "ok", changes: [] };
    });
  }

  async promoteRotation(next: SecretRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "gone" | "missing" | "conflict"> {
    type R = "ok" | "gone" | "missing" | "conflict";
    return this.write<R>(async (c) => {
      await this.q("SELECT 1 FROM secrets WHERE uid = $1 FOR UPDATE", [next.uid], c);
      const pending = await this.q("SELECT 1 FROM rotations WHERE secret_uid = $1 AND version = $2 AND state = 6 FOR UPDATE", [next.uid, next.version], c);
      if (pending.rowCount === 0) return { value: "gone", changes: [] };
      if ((await this.count(SQL.updateSecret, { ...R.secretBinds(next), expect_etag: expectEtag }, c)) === 0) return this.notApplied(c, next.uid);
      await this.run(SQL.pruneVersions, { uid: next.uid, version: next.version - maxVersions }, c);
      const kept = await this.q<{ previous_version: string }>(
        "UPDATE rotations SET previous_readable = FALSE WHERE secret_uid = $1 AND previous_readable AND version <> $2 RETURNING previous_version",
        [next.uid, next.version],
        c,
      );
      await this.q(
        `UPDATE rotations SET state = $3, deadline = $4, finished = $5, previous_readable = $6, detail = $7, driver = $8, driver_expire = $9
         WHERE secret_uid = $1 AND version = $2 AND state = 6`,
        [next.uid, next.version, rotation.state, rotation.deadline, rotation.finished ?? null, rotation.previousReadable, rotation.detail, rotation.driver, rotation.driverExpire],
        c,
      );
      const destroy = kept.rows.map((r) => R.num(r.previous_version)).filter((v) => v !== rotation.previousVersion);
      if (!rotation.previousReadable) destroy.push(rotation.previousVersion);
      if (destroy.length > 0) await this.q("DELETE FROM secret_versions WHERE uid = $1 AND version = ANY($2::bigint[])", [next.uid, destroy], c);
      return { value: "ok", changes: [change("secret-updated", next)] };
    });
  }

  async discardRotation(secretUid: string, version: number, finished: number, detail: string): Promise<boolean> {
    return this.write(async (c) => {
      const r = await this.q(
        "UPDATE rotations SET state = 5, finished = $3, detail = $4, driver = '', driver_expire = 0 WHERE secret_uid = $1 AND version = $2 AND state = 6",
        [secretUid, version, finished, detail],
        c,
      );
      if (r.rowCount === 0) return { value: false, changes: [] };
      await this.q("DELETE FROM secret_versions WHERE uid = $1 AND version = $2", [secretUid, version], c);
      const id = await this.one<R.Identity>(SQL.identity, { uid: secretUid }, c);
      // Readers of the pending stage (caches) learn it is gone.
      return { value: true, changes: id === undefined ? [] : [change("secret-updated", id)] };
    });
  }

  async noteRotation(secretUid: string, version: number, detail: string): Promise<boolean> {
    const r = await this.q("UPDATE rotations SET detail = $3 WHERE secret_uid = $1 AND version = $2 AND state = 6", [secretUid, version, detail]);
    return (r.rowCount ?? 0) > 0;
  }

  async readRotation(secretUid: string, version: number): Promise<RotationRow | undefined> {
    const r =
      version === 0
        ? await this.q<RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = $1 ORDER BY version DESC LIMIT 1`, [secretUid])
        : await this.q<RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = $1 AND version = $2`, [secretUid, version]);
    return r.rows[0] === undefined ? undefined : toRotation(r.rows[0]);
  }

  async listActiveRotations(limit: number): Promise<RotationRow[]> {
    const r = await this.q<RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE state IN (1, 2, 6) ORDER BY started LIMIT $1`, [limit]);
    return r.rows.map(toRotation);
  }

  async claimRotation(secretUid: string, version: number, driver: string, now: number, expireTime: number): Promise<boolean> {
    const r = await this.q(
      `UPDATE rotations SET driver = $3, driver_expire = $5 WHERE secret_uid = $1 AND version = $2 AND state IN (1, 2, 6)
         AND (driver = $3 OR driver = '' OR driver_expire <= $4)`,
      [secretUid, version, driver, now, expireTime],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async finishRotation(secretUid: string, version: number, driver: string, o: RotationOutcome): Promise<boolean> {
    return this.write(async (c) => {
      const r = await this.q<{ previous_version: string }>(
        `UPDATE rotations SET state = $4, finished = $5, detail = $6, driver = '', driver_expire = 0,
           previous_readable = CASE WHEN $7 THEN FALSE ELSE previous_readable END
         WHERE secret_uid = $1 AND version = $2 AND driver = $3 AND driver <> '' AND state IN (1, 2) RETURNING previous_version`,
        [secretUid, version, driver, o.state, o.finished, o.detail, o.retirePrevious],
        c,
      );
      const prev = r.rows[0];
      if (prev === undefined) return { value: false, changes: [] };
      if (!o.retirePrevious) return { value: true, changes: [] };
      await this.q("DELETE FROM secret_versions WHERE uid = $1 AND version = $2", [secretUid, R.num(prev.previous_version)], c);
      const id = await this.one<R.Identity>(SQL.identity, { uid: secretUid }, c);
      // Readers of the previous stage (caches, watches) learn it is gone.
      return { value: true, changes: id === undefined ? [] : [change("secret-updated", id)] };
    });
  }

  async releaseRotations(driver: string): Promise<void> {
    await this.q("UPDATE rotations SET driver_expire = 0 WHERE driver = $1", [driver]);
  }

  async listDueRotations(nowIso: string, now: number, limit: number): Promise<DueSecret[]> {
    return (await this.run<DueRecord>(SCHEDULE_SQL.due, { now_iso: nowIso, now, limit })).rows.map(toDue);
  }

  async claimDueRotation(secretUid: string, due: string, claimer: string, now: number, expireTime: number): Promise<boolean> {
    return (await this.count(SCHEDULE_SQL.claim, { uid: secretUid, due, claimer, expire: expireTime, now })) > 0;
  }

  async releaseDueRotation(secretUid: string, claimer: string): Promise<void> {
    await this.run(SCHEDULE_SQL.release, { uid: secretUid, claimer });
  }

  async failDueRotation(secretUid: string, claimer: string, f: { readonly error: string; readonly failedAt: number; readonly retryAt: number }): Promise<void> {
    await this.run(SCHEDULE_SQL.fail, { uid: secretUid, claimer, error: f.error, failed_at: f.failedAt, retry_at: f.retryAt });
  }

  async readDueRotation(secretUid: string): Promise<ScheduleRow | undefined> {
    const r = await this.one<ScheduleRecord>(SCHEDULE_SQL.read, { uid: secretUid });
    return r && toSchedule(r);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await Promise.all(this.batchesInFlight);
    await this.changes.close();
    await this.pool.end();
  }
}

/** Thrown inside tx() to roll the transaction back and answer `value` instead. */
class Rollback<T> {
  constructor(readonly value: T) {}
}

