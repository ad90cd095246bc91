/**
 * The embedded back-end: one SQLite file through better-sqlite3 (opened by
 * sqlite-database.ts), synchronous statements in immediate transactions, creates and
 * updates through the group commit. The statements and the rules on what their rows
 * mean are the SQL core's (storage/sql/), shared with PostgreSQL.
 */
import type Database from "better-sqlite3";
import type { FeedEvent } from "../change-feed.js";
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
import * as R from "../sql/rows.js";
import { SQL, listAuditSql, listSecretsSql, secretWithVersionSql } from "../sql/statements.js";
import type { Sql } from "../sql/sql.js";
import { ALL_ROWS, Rekeyed, assertBackfillApplied, auditBounds, backfillGate, conflictOrMissing, dekSwap, grantGuard, macStatement } from "../sql/write-rules.js";
import { GroupCommit } from "./group-commit.js";
import { ReadCache } from "../read-cache.js";
import { MARK_HOUSEKEEPING_SQL, SQLITE_FEED_DEFAULTS, SqliteChangeFeed, type ChangeInput, type SqliteFeedOptions } from "./sqlite-change-feed.js";
import { sqliteAuditWrites, type SqliteAuditWrites } from "./sqlite-audit-writes.js";
import { SqliteAuditWriter } from "./sqlite-audit-writer.js";
import { rotationStatements } from "./sqlite-rotations.js";
import { SCHEDULE_SQL, toDue, toSchedule, type DueRecord, type ScheduleRecord } from "../sql/schedule-statements.js";
import { rotationValues, toRotation } from "../sql/rotation-rows.js";
import { BUSY_TIMEOUT_MS, openSqliteDatabase } from "./sqlite-database.js";

type Db = Database.Database;
type Binds = Record<string, unknown>;

/** SQLite's own statements: where it differs from PostgreSQL in more than a fragment. */
const LOCAL = {
  backfillPending: "SELECT count(*) FROM mac_backfill",
  putSource: "INSERT OR IGNORE INTO consumer_watch_sources (secret_uid, watch_id) SELECT @uid, @watch_id WHERE EXISTS (SELECT 1 FROM secrets WHERE uid = @uid)",
  deleteSource: "DELETE FROM consumer_watch_sources WHERE secret_uid = @uid AND watch_id = @watch_id",
  watchRevision: "UPDATE consumer_watches SET revision = @revision WHERE watch_id = @watch_id AND replica = @replica",
  // unicode(CAST(byte AS TEXT)) is the byte's value for the id length (< 128).
  kekIds: "SELECT DISTINCT CAST(substr(dek, 3, unicode(CAST(substr(dek, 2, 1) AS TEXT))) AS TEXT) AS id FROM secret_versions",
  markHousekeeping: MARK_HOUSEKEEPING_SQL,
};

/** SQLite's renderings of the shared reads with variants, made once. */
const READ_ONE = secretWithVersionSql();
const LIST = listSecretsSql(false);
const LIST_VISIBLE = listSecretsSql(true);
const LIST_AUDIT = { time: listAuditSql("time"), sub: listAuditSql("sub"), name: listAuditSql("name") };

export interface SqliteStorageOptions {
  readonly feed?: Partial<SqliteFeedOptions>;
  /** Told how long each write transaction took, COMMIT included (a metric). */
  readonly onCommit?: (seconds: number) => void;
}

export class SqliteStorage implements Storage {
  private readonly db: Db;
  readonly changes: SqliteChangeFeed;
  /** Creates and updates share commits under concurrency (see group-commit.ts). */
  private readonly writes: GroupCommit;
  /** Several secrets from one snapshot: a deferred transaction pins the WAL read mark. */
  private readonly readMany: (scope: Scope, names: readonly string[], onRow: RowCheck | undefined) => Array<SecretWithVersion | undefined>;
  /** Each statement prepared once, by its text. */
  private readonly prepared = new Map<string, Database.Statement<[Binds?]>>();
  private readonly auditWrites: SqliteAuditWrites;
  /** Hot secrets without a SQLite lookup; see read-cache.ts for how it stays coherent. */
  private readonly cache = new ReadCache();
  /** Other processes' commits are looked for once per event-loop turn of reads (a data_version read cost ~10 us a call under load). */
  private feedFresh = false;
  private readonly expireFeedCheck = (): void => {
    this.feedFresh = false;
  };

  private readonly onCommit: (seconds: number) => void;
  private readonly rot: ReturnType<typeof rotationStatements>;

  constructor(
    private readonly file: string,
    options: SqliteStorageOptions = {},
  ) {
    this.onCommit = options.onCommit ?? (() => {});
    this.db = openSqliteDatabase(file);
    const db = this.db;
    this.changes = new SqliteChangeFeed(db, { ...SQLITE_FEED_DEFAULTS, ...options.feed });
    // The read cache is one more subscriber of the feed: the only way it learns of writes.
    this.changes.subscribe((ev: FeedEvent) => {
      if (ev.type === "changes") for (const c of ev.changes) this.cache.invalidate(c.uid);
      else this.cache.clear();
    });
    this.writes = new GroupCommit(
      db,
      (seconds) => {
        this.publish();
        this.onCommit(seconds);
      },
      { busyTimeoutMs: BUSY_TIMEOUT_MS },
    );
    this.auditWrites = sqliteAuditWrites(db);
    this.rot = rotationStatements(db);
    this.readMany = db.transaction((scope: Scope, names: readonly string[], onRow: RowCheck | undefined) =>
      names.map((n) => {
        const row = this.readOne(scope, n, 0);
        onRow?.(n, row);
        return row;
      }),
    );
  }

  private stmt(s: Sql | string): Database.Statement<[Binds?]> {
    const text = typeof s === "string" ? s : s.sqlite;
    let st = this.prepared.get(text);
    if (st === undefined) this.prepared.set(text, (st = this.db.prepare<[Binds?]>(text)));
    return st;
  }

  private one<T>(s: Sql | string, binds: Binds = {}): T | undefined {
    return this.stmt(s).get(binds) as T | undefined;
  }

  private all<T>(s: Sql | string, binds: Binds = {}): T[] {
    return this.stmt(s).all(binds) as T[];
  }

  /** Runs a write statement; the rows it changed. */
  private run(s: Sql | string, binds: Binds = {}): number {
    return this.stmt(s).run(binds).changes;
  }

  /** Right after a COMMIT of this connection: its changes go out before its caller is answered. */
  private publish(): void {
    try {
      this.changes.pump();
    } catch {
      // Not lost: the next pump (next commit, or the poll timer) reads every row after the feed's revision.
    }
  }

  /**
   * One immediate write transaction (its duration told to onCommit), then its changes
   * published. Deletes, grants and MAC re-keys still take the lock with the blocking
   * busy_timeout: routing them through the group commit (deferred to the next turn) broke
   * two sidecar e2e cases (server restart, token expiry), not yet understood.
   */
  private commit<T>(fn: () => T): T {
    const started = performance.now();
    const result = this.db.transaction(fn).immediate();
    this.onCommit((performance.now() - started) / 1000);
    this.publish();
    return result;
  }

  private record(kind: ChangeInput["kind"], s: R.Identity): void {
    this.changes.record({ kind, tenant: s.tenant, mesh: s.mesh, name: s.name, uid: s.uid });
  }

  /**
   * Reads in one event-loop turn share one look at other processes' commits: one that
   * lands during the turn is seen from the next turn on, as if those reads had come a
   * moment earlier. Own writes never wait for it (they publish as they commit).
   */
  private catchUpWithOtherProcesses(): void {
    if (this.feedFresh) return;
    this.feedFresh = true;
    setImmediate(this.expireFeedCheck);
    this.changes.poll();
  }

  /** Grants hang off the uid, so reading them after the secret is consistent enough. */
  private readOne(scope: Scope, name: string, version: number): SecretWithVersion | undefined {
    const cached = this.cache.get(scope, name, version);
    if (cached !== undefined) return cached;
    const rec = this.one<R.SecretRecord & R.JoinedVersionRecord & R.LatestVersion>(READ_ONE, { tenant: scope.tenant, mesh: scope.mesh, name, version });
    if (!rec) return undefined;
    return this.cache.put(scope, name, version, R.toSecretWithVersion(rec, this.all<R.GrantRecord>(SQL.grantsOf, { uid: rec.uid })));
  }

  async insertSecret(secret: SecretRow, version: VersionRow, request?: CreateRequestRow): Promise<"ok" | "exists" | "request-exists"> {
    return this.writes.submit((): "ok" | "exists" | "request-exists" => {
      if (request && this.one(SQL.findRequest, { tenant: secret.tenant, sub: request.sub, request_id: request.requestId })) return "request-exists";
      if (this.run(SQL.insertSecret, R.secretBinds(secret)) === 0) return "exists";
      this.run(SQL.insertVersion, R.versionBinds(version));
      if (request) this.run(SQL.insertRequest, R.requestBinds(secret, request));
      this.record("secret-created", secret);
      return "ok";
    });
  }

  async findCreateRequest(tenant: string, sub: string, requestId: string): Promise<CreateRequestRow | undefined> {
    const r = this.one<R.RequestRecord>(SQL.findRequest, { tenant, sub, request_id: requestId });
    return r && R.toRequest(r);
  }

  async readSecret(scope: Scope, name: string, version: number): Promise<SecretWithVersion | undefined> {
    this.catchUpWithOtherProcesses();
    return this.readOne(scope, name, version);
  }

  async readSecrets(scope: Scope, names: readonly string[], onRow?: RowCheck): Promise<ReadonlyArray<SecretWithVersion | undefined>> {
    this.catchUpWithOtherProcesses();
    // All cached: the cache is one consistent state already (writes invalidate in step), no transaction needed.
    const cached = names.map((n) => this.cache.get(scope, n, 0));
    if (cached.every((c) => c !== undefined)) {
      if (onRow) names.forEach((n, i) => onRow(n, cached[i]));
      return cached;
    }
    return this.readMany(scope, names, onRow);
  }

  async listSecrets(scope: Scope, q: ListQuery): Promise<ListedSecret[]> {
    const params = { tenant: scope.tenant, mesh: scope.mesh, after: q.afterName, type: q.type ?? null, expire_before: q.expireBefore ?? null, limit: q.limit };
    const v = q.visibleTo;
    const listed = (r: R.SecretRecord & R.LatestVersion): ListedSecret => ({ ...R.toSecret(r), latestVersion: R.num(r.latest_version ?? 0) });
    if (!v) return this.all<R.SecretRecord & R.LatestVersion>(LIST, params).map(listed);
    // A non-owner sees a row through a grant: its grants come along (one snapshot), so
    // the row-MAC check can decide visibility again on the authenticated set.
    return this.db.transaction(() =>
      this.all<R.SecretRecord & R.LatestVersion>(LIST_VISIBLE, { ...params, owner: v.owner, subjects: JSON.stringify(v.subjects), now: v.now }).map(
        (r): ListedSecret => (r.owner === v.owner ? listed(r) : { ...listed(r), grants: this.all<R.GrantRecord>(SQL.grantsOf, { uid: r.uid }).map(R.toGrant) }),
      ),
    )();
  }

  async updateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): Promise<"ok" | "missing" | "conflict"> {
    return this.writes.submit(() => this.applyUpdate(next, version, expectEtag, maxVersions));
  }

  /** updateSecret's writes, inside the caller's transaction (RotateSecret's too). */
  private applyUpdate(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number): "ok" | "missing" | "conflict" {
    if (this.run(SQL.updateSecret, { ...R.secretBinds(next), expect_etag: expectEtag }) === 0) return conflictOrMissing(this.one(SQL.identity, { uid: next.uid }) !== undefined);
    this.run(SQL.insertVersion, R.versionBinds(version));
    this.run(SQL.pruneVersions, { uid: next.uid, version: version.version - maxVersions });
    this.record("secret-updated", next);
    return "ok";
  }

  async deleteSecret(uid: string, etag: string | undefined): Promise<"ok" | "missing" | "conflict"> {
    return this.commit((): "ok" | "missing" | "conflict" => {
      const gone = this.one<R.Identity>(SQL.deleteSecret, { uid, etag: etag ?? null });
      if (!gone) return conflictOrMissing(this.one(SQL.identity, { uid }) !== undefined);
      this.record("secret-deleted", gone);
      return "ok";
    });
  }

  private grantsMacOf(uid: string): (R.Identity & { grants_mac: Buffer | null }) | undefined {
    return this.one(SQL.grantsMacOf, { uid });
  }

  async putGrant(g: GrantRow, guard?: GrantsMacGuard): Promise<"ok" | "missing" | "conflict"> {
    return this.commit((): "ok" | "missing" | "conflict" => {
      const s = this.grantsMacOf(g.secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return decision === "write" ? "missing" : decision;
      if (guard) this.run(SQL.setGrantsMac, { uid: g.secretUid, next: Buffer.from(guard.next) });
      this.run(SQL.putGrant, R.grantBinds(g));
      this.record("grant-put", s);
      return "ok";
    });
  }

  async deleteGrants(secretUid: string, subject: string, level: number | undefined, guard?: GrantsMacGuard): Promise<number | "conflict"> {
    return this.commit((): number | "conflict" => {
      const s = this.grantsMacOf(secretUid);
      const decision = grantGuard(s, guard);
      if (decision !== "write" || s === undefined) return decision === "conflict" ? "conflict" : 0;
      const removed = this.run(SQL.deleteGrants, { uid: secretUid, subject, level: level ?? null });
      if (removed === 0) return 0;
      if (guard) this.run(SQL.setGrantsMac, { uid: secretUid, next: Buffer.from(guard.next) });
      this.record("grant-revoked", s);
      return removed;
    });
  }

  async readGrants(secretUid: string): Promise<GrantSet | undefined> {
    return this.db.transaction((): GrantSet | undefined => {
      const current = this.grantsMacOf(secretUid);
      if (!current) return undefined;
      return { grants: this.all<R.GrantRecord>(SQL.grantsOf, { uid: secretUid }).map(R.toGrant), grantsMac: current.grants_mac ?? undefined };
    })();
  }

  /** Secrets after `afterUid` with every MAC-covered row, read in the caller's transaction. */
  private macRowsAfter(afterUid: string, limit: number): MacRows[] {
    const secrets = this.all<R.SecretRecord>(SQL.secretsByUid, { after: afterUid, limit });
    if (secrets.length === 0) return [];
    const uids = { uids: JSON.stringify(secrets.map((s) => s.uid)) };
    return R.toMacRows(secrets, this.all(SQL.grantsOfMany, uids), this.all(SQL.versionMetasOfMany, uids), this.all(SQL.requestsOfMany, uids));
  }

  async listMacRows(afterUid: string, limit: number): Promise<MacRows[]> {
    return this.db.transaction(() => this.macRowsAfter(afterUid, limit))();
  }

  /** Inside the caller's write transaction: each MAC compare-and-set, then one "secret-rekeyed" change per secret re-keyed. */
  private applyMacs(replacements: readonly MacReplacement[]): number {
    const touched = new Rekeyed();
    for (const r of replacements) {
      const m = macStatement(r);
      touched.note(m.uid, this.run(m.sql, m.binds));
    }
    this.recordRekeyed(touched);
    return touched.applied;
  }

  private recordRekeyed(rekeyed: Rekeyed): void {
    for (const uid of rekeyed.uids) {
      const s = this.one<R.Identity>(SQL.identity, { uid });
      if (s) this.record("secret-rekeyed", s);
    }
  }

  async replaceMacs(replacements: readonly MacReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.commit((): number => this.applyMacs(replacements));
  }

  async backfillMacs(compute: (rows: readonly MacRows[]) => readonly MacReplacement[]): Promise<number | "none" | "refused"> {
    return this.commit((): number | "none" | "refused" => {
      // Migration 7 leaves the mark (see backfillGate).
      const pending = this.stmt(LOCAL.backfillPending).pluck().get() !== 0;
      const gate = backfillGate(pending, pending && this.stmt(SQL.anyMac).pluck().get() !== 0);
      if (gate !== "backfill") return gate;
      const replacements = compute(this.macRowsAfter("", ALL_ROWS));
      const applied = this.applyMacs(replacements);
      assertBackfillApplied(applied, replacements);
      this.run(SQL.clearBackfill);
      return applied;
    });
  }

  async listVersionKeys(afterUid: string, afterVersion: number, limit: number): Promise<VersionKeyRow[]> {
    return this.all<R.VersionKeyRecord>(SQL.versionKeys, { uid: afterUid, version: afterVersion, limit }).map(R.toVersionKey);
  }

  async kekIdsInUse(): Promise<string[]> {
    return this.all<{ id: string }>(LOCAL.kekIds).map((r) => r.id);
  }

  async replaceDeks(replacements: readonly DekReplacement[]): Promise<number> {
    if (replacements.length === 0) return 0;
    return this.commit((): number => {
      const rekeyed = new Rekeyed();
      for (const r of replacements) rekeyed.note(r.uid, this.run(SQL.replaceDek, dekSwap(r)));
      this.recordRekeyed(rekeyed);
      return rekeyed.applied;
    });
  }

  /** A lease write through the group commit, marked as housekeeping (no secret changed). */
  private housekeeping<T>(fn: () => T): Promise<T> {
    return this.writes.submit(() => {
      const out = fn();
      this.run(LOCAL.markHousekeeping);
      return out;
    });
  }

  async openReplica(replica: string, hb: Heartbeat): Promise<void> {
    await this.housekeeping(() => this.run(SQL.openReplica, { replica, now: hb.now, expire_time: hb.expireTime }));
  }

  async putLeases(lease: WatchLease, secretUids: readonly string[], now: number): Promise<boolean> {
    return this.housekeeping((): boolean => {
      if (this.one(SQL.replicaLive, { replica: lease.replica, now }) === undefined) return false;
      this.run(SQL.putWatch, R.watchBinds(lease));
      for (const uid of secretUids) this.run(LOCAL.putSource, { uid, watch_id: lease.watchId });
      return true;
    });
  }

  async deleteLeases(watchId: string, secretUids?: readonly string[]): Promise<void> {
    await this.housekeeping(() => {
      if (secretUids === undefined) this.run(SQL.deleteWatch, { watch_id: watchId });
      else {
        for (const uid of secretUids) this.run(LOCAL.deleteSource, { uid, watch_id: watchId });
        this.run(SQL.deleteWatchIfEmpty, { watch_id: watchId });
      }
    });
  }

  async renewLeases(replica: string, hb: Heartbeat, revisions: ReadonlyMap<string, string>): Promise<number> {
    return this.housekeeping((): number => {
      let written = this.run(SQL.heartbeat, { replica, now: hb.now, expire_time: hb.expireTime });
      if (written > 0) for (const [watchId, revision] of revisions) written += this.run(LOCAL.watchRevision, { revision, watch_id: watchId, replica });
      this.run(SQL.pruneDeadWatches, { now: hb.now });
      this.run(SQL.pruneDeadReplicas, { now: hb.now });
      return written;
    });
  }

  async deleteReplicaLeases(replica: string): Promise<void> {
    await this.housekeeping(() => this.run(SQL.endReplica, { replica }));
  }

  async listLeases(secretUid: string, now: number): Promise<LeaseRow[]> {
    return this.all<R.LeaseRecord>(SQL.listLeases, { uid: secretUid, now }).map(R.toLease);
  }

  async recordSent(sends: readonly WatchSends[]): Promise<void> {
    if (sends.length === 0) return;
    await this.writes.submit(() => {
      for (const s of sends) {
        this.run(SQL.watchSent, { watch_id: s.watchId, replica: s.replica, revision: s.sent[s.sent.length - 1]?.revision ?? "", sent: R.sentJson(s.sent) });
      }
      this.run(LOCAL.markHousekeeping);
    });
  }

  async readWatch(watchId: string, now: number): Promise<WatchAckView | undefined> {
    const row = this.one<R.WatchAckRecord>(SQL.readWatch, { watch_id: watchId, now });
    return row === undefined ? undefined : R.toWatchAckView(row);
  }

  async recordAck(watchId: string, ack: WatchAck): Promise<boolean> {
    return this.writes.submit((): boolean => {
      const written = this.run(SQL.watchAck, { watch_id: watchId, seq: ack.seq, revision: ack.revision, time: ack.time, applied: R.sourcesJson(ack.applied) }) > 0;
      this.run(LOCAL.markHousekeeping);
      return written;
    });
  }

  async appendAudit(events: readonly AuditRow[]): Promise<void> {
    if (events.length === 0) return;
    // Through the group commit: a batch that arrives with secret writes shares their COMMIT.
    // (The server appends from the audit writer thread instead: sqlite-audit-writer.ts.)
    await this.writes.submit(() => this.auditWrites.append(events));
  }

  /** The server's audit writes, from a thread with its own connection to this file (sqlite-audit-writer.ts). */
  openAuditWriter(): SqliteAuditWriter {
    return new SqliteAuditWriter(this.file, BUSY_TIMEOUT_MS);
  }

  async listAudit(tenant: string, q: AuditQuery): Promise<StoredAuditRow[]> {
    const b = auditBounds(q);
    const binds = { tenant, ...b, after_time: b.afterTime, after_id: b.afterId, meshes: b.meshes === null ? null : JSON.stringify(b.meshes) };
    return this.all<R.AuditRecord>(LIST_AUDIT[b.by], binds).map(R.toAudit);
  }

  async pruneAudit(before: number, limit: number): Promise<number> {
    return this.writes.submit(() => this.auditWrites.prune(before, limit));
  }

  async pruneAuditBytes(maxBytes: number, limit: number): Promise<number> {
    return this.writes.submit(() => this.auditWrites.pruneBytes(maxBytes, limit));
  }

  async rotateSecret(next: SecretRow, version: VersionRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    return this.writes.submit(() => {
      const running = this.rot.active.get(next.uid);
      if (running !== undefined) return { running: toRotation(running) };
      const updated = this.applyUpdate(next, version, expectEtag, maxVersions);
      if (updated !== "ok") return updated;
      // The previous version an earlier rotation kept (NEVER) loses its stage, and is retired.
      for (const kept of this.rot.readablePrevious.all(next.uid)) {
        this.rot.unmarkPrevious.run(next.uid, kept.version);
        if (kept.previous_version !== rotation.previousVersion) this.rot.destroyVersion.run(next.uid, kept.previous_version);
      }
      this.rot.insert.run(...rotationValues(rotation, (b) => (b ? 1 : 0)));
      if (!rotation.previousReadable) this.rot.destroyVersion.run(next.uid, rotation.previousVersion);
      return "ok" as const;
    });
  }

  async beginRotation(version: VersionRow, expectEtag: string, rotation: RotationRow): Promise<"ok" | "missing" | "conflict" | { readonly running: RotationRow }> {
    return this.writes.submit(() => {
      const running = this.rot.active.get(rotation.secretUid);
      if (running !== undefined) return { running: toRotation(running) };
      const head = this.rot.secretHead.get(rotation.secretUid);
      if (head === undefined) return "missing" as const;
      if (head.etag !== expectEtag || version.version !== head.version + 1) return "conflict" as const;
      this.run(SQL.insertVersion, R.versionBinds(version));
      this.rot.dropFinished.run(rotation.secretUid, rotation.version);
      this.rot.insert.run(...rotationValues(rotation, (b) => (b ? 1 : 0)));
      return "ok" as const;
    });
  }

  async promoteRotation(next: SecretRow, expectEtag: string, maxVersions: number, rotation: RotationRow): Promise<"ok" | "gone" | "missing" | "conflict"> {
    return this.writes.submit((): "ok" | "gone" | "missing" | "conflict" => {
      const pending = this.rot.read.get(next.uid, next.version);
      if (pending?.state !== 6) return "gone";
      if (this.run(SQL.updateSecret, { ...R.secretBinds(next), expect_etag: expectEtag }) === 0) return conflictOrMissing(this.one(SQL.identity, { uid: next.uid }) !== undefined);
      this.run(SQL.pruneVersions, { uid: next.uid, version: next.version - maxVersions });
      for (const kept of this.rot.readablePrevious.all(next.uid)) {
        this.rot.unmarkPrevious.run(next.uid, kept.version);
        if (kept.previous_version !== rotation.previousVersion) this.rot.destroyVersion.run(next.uid, kept.previous_version);
      }
      this.rot.promote.run({
        uid: next.uid, version: next.version, state: rotation.state, deadline: rotation.deadline, finished: rotation.finished ?? null,
        readable: rotation.previousReadable ? 1 : 0, detail: rotation.detail, driver: rotation.driver, expire: rotation.driverExpire,
      });
      if (!rotation.previousReadable) this.rot.destroyVersion.run(next.uid, rotation.previousVersion);
      this.record("secret-updated", next);
      return "ok";
    });
  }

  async discardRotation(secretUid: string, version: number, finished: number, detail: string): Promise<boolean> {
    return this.writes.submit((): boolean => {
      if (this.rot.discard.run({ uid: secretUid, version, finished, detail }).changes === 0) return false;
      this.rot.destroyVersion.run(secretUid, version);
      // Readers of the pending stage (caches) learn it is gone.
      const id = this.rot.identity.get(secretUid);
      if (id !== undefined) this.record("secret-updated", id);
      return true;
    });
  }

  async noteRotation(secretUid: string, version: number, detail: string): Promise<boolean> {
    return this.writes.submit(() => this.rot.note.run({ uid: secretUid, version, detail }).changes > 0);
  }

  async readRotation(secretUid: string, version: number): Promise<RotationRow | undefined> {
    const r = version === 0 ? this.rot.latest.get(secretUid) : this.rot.read.get(secretUid, version);
    return r === undefined ? undefined : toRotation(r);
  }

  async listActiveRotations(limit: number): Promise<RotationRow[]> {
    return this.rot.listActive.all(limit).map(toRotation);
  }

  async claimRotation(secretUid: string, version: number, driver: string, now: number, expireTime: number): Promise<boolean> {
    return this.writes.submit(() => this.rot.claim.run({ uid: secretUid, version, driver, now, expire: expireTime }).changes > 0);
  }

  async finishRotation(secretUid: string, version: number, driver: string, o: RotationOutcome): Promise<boolean> {
    return this.writes.submit((): boolean => {
      const done = this.rot.finish.run({ uid: secretUid, version, driver, state: o.state, finished: o.finished, detail: o.detail, retire: o.retirePrevious ? 1 : 0 }).changes > 0;
      if (!done || !o.retirePrevious) return done;
      const prev = this.rot.previousOf.get(secretUid, version);
      const id = this.rot.identity.get(secretUid);
      if (prev !== undefined) this.rot.destroyVersion.run(secretUid, prev.previous_version);
      // Readers of the previous stage (caches, watches) learn it is gone.
      if (id !== undefined) this.record("secret-updated", id);
      return true;
    });
  }

  async releaseRotations(driver: string): Promise<void> {
    await this.writes.submit(() => void this.rot.release.run(driver));
  }

  async listDueRotations(nowIso: string, now: number, limit: number): Promise<DueSecret[]> {
    return this.all<DueRecord>(SCHEDULE_SQL.due, { now_iso: nowIso, now, limit }).map(toDue);
  }

  async claimDueRotation(secretUid: string, due: string, claimer: string, now: number, expireTime: number): Promise<boolean> {
    return this.writes.submit(() => this.run(SCHEDULE_SQL.claim, { uid: secretUid, due, claimer, expire: expireTime, now }) > 0);
  }

  async releaseDueRotation(secretUid: string, claimer: string): Promise<void> {
    await this.writes.submit(() => void this.run(SCHEDULE_SQL.release, { uid: secretUid, claimer }));
  }

  async failDueRotation(secretUid: string, claimer: string, f: { readonly error: string; readonly failedAt: number; readonly retryAt: number }): Promise<void> {
    await this.writes.submit(() => void this.run(SCHEDULE_SQL.fail, { uid: secretUid, claimer, error: f.error, failed_at: f.failedAt, retry_at: f.retryAt }));
  }

  async readDueRotation(secretUid: string): Promise<ScheduleRow | undefined> {
    const r = this.one<ScheduleRecord>(SCHEDULE_SQL.read, { uid: secretUid });
    return r && toSchedule(r);
  }

  async close(): Promise<void> {
    this.changes.close();
    this.cache.clear();
    if (this.db.open) this.db.close();
  }
}
