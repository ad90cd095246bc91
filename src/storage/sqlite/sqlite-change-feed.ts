/**
 * The change feed on SQLite. Every write transaction of SqliteStorage records one row per
 * change in the `changes` table (migration 8); the AUTOINCREMENT revision is assigned while
 * the transaction holds SQLite's single write lock, so revisions are strictly increasing in
 * commit order and a reader that asks for "after N" never misses one.
 *
 * - Own commits: SqliteStorage calls pump() right after each COMMIT, in the same
 *   synchronous step, so subscribers hear of a write before its caller is answered.
 * - Other processes' commits (another worker on the file): `PRAGMA data_version` moves;
 *   poll() runs every `pollMs` and once per event-loop turn of reads, and then pumps. A
 *   commit that moved data_version but left no change row is "unattributed" (a tool
 *   writing the file, `secretd keys rotate`): subscribers are told to resync. Writes of
 *   secretd that change no secret or grant (audit flushes, consumer leases, from any
 *   worker or the audit writer thread) bump the `housekeeping` counter in their
 *   transaction instead (MARK_HOUSEKEEPING_SQL), so they cost no resync: without it,
 *   every other worker would drop its whole read cache on each audit flush.
 * - Compaction: every `pruneEvery` revisions the writing transaction also deletes rows
 *   older than the last `retain` revisions and records the compacted revision, so a
 *   subscriber (or a process that slept) behind it gets "resync", never a silent gap.
 */
import type Database from "better-sqlite3";
import { ChangeFanout, type Change, type ChangeFeed, type ChangeKind, type FeedListener, type FeedSubscription } from "../change-feed.js";

export interface SqliteFeedOptions {
  /** How often another process's commits are looked for (ms). */
  readonly pollMs: number;
  /** Change rows kept in the table. */
  readonly retain: number;
  /** Compaction runs inside every pruneEvery-th change's transaction. */
  readonly pruneEvery: number;
  /** Recent changes kept in memory for resuming subscribers. */
  readonly window: number;
  readonly onError?: (err: unknown) => void;
}

export const SQLITE_FEED_DEFAULTS: SqliteFeedOptions = { pollMs: 25, retain: 10_000, pruneEvery: 1_000, window: 1_000 };

interface ChangeRecord {
  revision: number;
  kind: ChangeKind;
  tenant: string;
  mesh: string;
  name: string;
  uid: string;
}

export type ChangeInput = Omit<Change, "revision">;

/** Run inside a write transaction that changes no secret or grant (see above). */
export const MARK_HOUSEKEEPING_SQL = "UPDATE housekeeping SET commits = commits + 1 WHERE id = 1";

export class SqliteChangeFeed implements ChangeFeed {
  readonly #fanout: ChangeFanout;
  readonly #stmt;
  #seenDataVersion: number;
  #seenHousekeeping: number;
  readonly #timer: NodeJS.Timeout;

  constructor(
    db: Database.Database,
    private readonly options: SqliteFeedOptions = SQLITE_FEED_DEFAULTS,
  ) {
    this.#stmt = {
      insert: db.prepare("INSERT INTO changes (kind, tenant, mesh, name, uid, time) VALUES (@kind, @tenant, @mesh, @name, @uid, @time)"),
      after: db.prepare<[number], ChangeRecord>("SELECT revision, kind, tenant, mesh, name, uid FROM changes WHERE revision > ? ORDER BY revision"),
      head: db.prepare<[], number>("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)").pluck(),
      compacted: db.prepare<[], number>("SELECT revision FROM change_compaction WHERE id = 1").pluck(),
      prune: db.prepare("DELETE FROM changes WHERE revision <= ?"),
      setCompacted: db.prepare("UPDATE change_compaction SET revision = max(revision, ?) WHERE id = 1"),
      dataVersion: db.prepare<[], number>("PRAGMA data_version").pluck(),
      housekeeping: db.prepare<[], number>("SELECT commits FROM housekeeping WHERE id = 1").pluck(),
    };
    this.#seenDataVersion = this.#stmt.dataVersion.get()!;
    this.#seenHousekeeping = this.#stmt.housekeeping.get()!;
    // The memory window never reaches further back than the table: one retained window.
    const window = Math.min(options.window, options.retain);
    const fanoutOptions = options.onError ? { window, onError: options.onError } : { window };
    this.#fanout = new ChangeFanout(this.#stmt.head.get()!, fanoutOptions, (rev) => this.#readAfter(rev));
    this.#timer = setInterval(() => this.poll(), options.pollMs);
    this.#timer.unref();
  }

  revision(): number {
    return this.#fanout.revision;
  }

  get subscribers(): number {
    return this.#fanout.subscribers;
  }

  subscribe(listener: FeedListener, fromRevision?: number): FeedSubscription {
    this.poll();
    return this.#fanout.subscribe(listener, fromRevision);
  }

  /** Records a change inside the caller's open write transaction; returns its revision. */
  record(change: ChangeInput): number {
    const revision = Number(this.#stmt.insert.run({ ...change, time: Date.now() }).lastInsertRowid);
    if (revision % this.options.pruneEvery === 0 && revision > this.options.retain) {
      const through = revision - this.options.retain;
      this.#stmt.prune.run(through);
      this.#stmt.setCompacted.run(through);
    }
    return revision;
  }

  /** Publishes every committed change not yet published (own and other processes'). Returns how many. */
  pump(): number {
    // data_version first: a commit landing after this read is seen by the next poll, never lost.
    const dataVersion = this.#stmt.dataVersion.get()!;
    const foreign = dataVersion !== this.#seenDataVersion;
    this.#seenDataVersion = dataVersion;
    const from = this.#fanout.revision;
    const rows = this.#stmt.after.all(from);
    // Read after the rows: a housekeeping commit racing this pump moves data_version
    // again, and the next poll resyncs once too often, not once too few. Without a
    // foreign commit, a moved counter is this connection's own housekeeping.
    const housekeeping = this.#stmt.housekeeping.get()!;
    const quiet = housekeeping !== this.#seenHousekeeping;
    this.#seenHousekeeping = housekeeping;
    // (A tool's edit landing between two polls together with a housekeeping commit or a
    // change goes unnoticed, as its edit cannot be told apart from theirs.)
    if (foreign && rows.length === 0 && !quiet) this.#fanout.resync(from, "unattributed");
    if (rows.length === 0) return 0;
    if (rows[0]!.revision > from + 1 && this.#stmt.compacted.get()! > from) {
      this.#fanout.resync(rows[rows.length - 1]!.revision, "compacted");
    } else {
      this.#fanout.publish(rows);
    }
    return rows.length;
  }

  /** Looks for commits of other connections; cheap when there are none (one pragma read). */
  poll(): void {
    try {
      if (this.#stmt.dataVersion.get() !== this.#seenDataVersion) this.pump();
    } catch (err) {
      // The database closed under a late timer tick, or a transient SQLITE_BUSY: the next poll retries.
      this.options.onError?.(err);
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #readAfter(revision: number): readonly Change[] | undefined {
    if (this.#stmt.compacted.get()! > revision) return undefined;
    return this.#stmt.after.all(revision);
  }
}
