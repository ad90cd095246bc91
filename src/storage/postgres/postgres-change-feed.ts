/**
 * The change feed on PostgreSQL, without a global lock (#29 item 1). A writing
 * transaction inserts one `changes` row per change stamped with its own transaction id
 * (`pg_current_xact_id()`, xid8) and its place in the transaction; writers take no shared
 * row, so they commit in parallel (PostgreSQL's group commit). Transaction ids are not
 * commit order, so a reader takes only changes below its snapshot's xmin: every
 * transaction with a smaller id has ended, so no change can still appear below it, and
 * the order (xid, pos) of what lies below is final and the same for every reader on
 * every replica (the transactional-outbox "high-water mark", as Marten and Sequin do).
 * When a change is published, the store already holds every change published before it.
 * A change's revision is its ordinal in that order (feed_head.compacted counts the
 * prefix compaction deleted), so every replica numbers it alike.
 * Subscribers hear of changes from pump(), which reads "after the last (xid, pos) seen":
 * - own commits: the writer awaits committed() after COMMIT, which waits until the
 *   reads have passed its transaction id, so subscribers hear of a write before its
 *   caller is answered (a transaction holding xmin back longer than `holdMs` makes it
 *   send "resync" instead and report it; the change follows once xmin moves);
 * - other replicas' commits: a NOTIFY sent after COMMIT (outside the writing
 *   transaction: NOTIFY takes a database-wide lock through COMMIT; carried by the read
 *   that publishes the commit here, READ_NOTIFY) wakes pump() through
 *   LISTEN on a dedicated connection; committed changes not yet below xmin are re-read
 *   soon after (a few ms, backing off);
 * - a missed notification (the listening connection dropped, a replica slept): a catch-up
 *   pump on reconnect and every `pollMs`, so nothing is lost, only late.
 * Compaction (run by a reader every `pruneEvery` changes) deletes all but the last
 * `retain` final changes; a reader that fell behind it gets "resync".
 * A write to the secret tables that secretd did not make (plain SQL, a restore: see
 * migration 9's trigger) is heard on TABLES_CHANNEL and sent as "resync"/"unattributed",
 * as SQLite does when PRAGMA data_version moves without a change row.
 */
import pg from "pg";
import { ChangeFanout, type Change, type ChangeFeed, type ChangeKind, type FeedListener, type FeedSubscription } from "../change-feed.js";

export const CHANNEL = "secretd_changes";
/** Notified by migration 9's trigger when a session not marked as secretd's writes a secret, version or grant row. */
export const TABLES_CHANNEL = "secretd_tables";

export interface PostgresFeedOptions {
  /** Catch-up read interval when no notification came (ms). */
  readonly pollMs: number;
  /** Change rows kept in the table, and in memory for resuming subscribers. */
  readonly retain: number;
  /** A reader compacts every pruneEvery changes it publishes. */
  readonly pruneEvery: number;
  /** How long a writer waits for its change to be published before it sends "resync" (ms). */
  readonly holdMs: number;
  readonly onError?: (err: unknown) => void;
}

export const POSTGRES_FEED_DEFAULTS: PostgresFeedOptions = { pollMs: 1000, retain: 10_000, pruneEvery: 1_000, holdMs: 2_000 };

export type ChangeInput = Omit<Change, "revision">;

type Queryable = Pick<pg.PoolClient, "query">;

/** A place in the feed's order: every change at or before (xid, pos) has been published. */
interface Cursor {
  readonly xid: string;
  readonly pos: string;
}

/** [xid, pos, kind, tenant, mesh, name, uid] */
type ChangeTuple = [string, string, ChangeKind, string, string, string, string];

const BATCH = 10_000;

/**
 * Changes after a cursor and below the snapshot's xmin, with where the feed stands, in one
 * statement (one snapshot). Run after every commit on every replica, so it is a named
 * prepared statement (parsed and planned once per connection, not each time: ~0.4 ms of
 * planning saved a read). `pending` (is any change at or above xmin, not yet final?) is
 * the newest xid compared with xmin: a backward scan of the primary key's first entry,
 * whatever the table's statistics; `EXISTS (… WHERE xid >= xmin)` was planned as a
 * sequential scan of every retained change (10,000 rows, ~1.2 ms) when they were stale.
 */
const READ = {
  name: "secretd-feed-read",
  text: `
  WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
  SELECT s.xmin::text AS xmin, h.compacted::text AS compacted,
    coalesce((SELECT xid FROM changes ORDER BY xid DESC LIMIT 1) >= s.xmin, false) AS pending,
    (SELECT coalesce(json_agg(json_build_array(c.xid::text, c.pos::text, c.kind, c.tenant, c.mesh, c.name, c.uid) ORDER BY c.xid, c.pos), '[]'::json)
       FROM (SELECT * FROM changes WHERE (xid, pos) > ($1::xid8, $2::bigint) AND xid < s.xmin ORDER BY xid, pos LIMIT ${BATCH}) c) AS rows
  FROM s, feed_head h WHERE h.id = 1`,
};

/**
 * READ that also tells the other replicas' LISTEN connections that changes committed: the
 * read a writer's committed() starts carries the NOTIFY it owes (one statement, one
 * round trip and one transaction fewer per commit than a NOTIFY of its own). It runs after
 * the writer's COMMIT, outside its transaction, as the NOTIFY must.
 */
const READ_NOTIFY = { name: "secretd-feed-read-notify", text: READ.text.replace("SELECT s.xmin::text AS xmin,", `SELECT pg_notify('${CHANNEL}', '') AS notified, s.xmin::text AS xmin,`) };

/** Tells the other replicas that changes committed, when no read of this process carries it (a named prepared statement). */
const NOTIFY = { name: "secretd-feed-notify", text: "SELECT pg_notify($1, '')" };

/** Where the feed stands: the revision of the last final change and its place. */
const HEAD = `
  WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
  last AS (SELECT xid, pos FROM changes, s WHERE xid < s.xmin ORDER BY xid DESC, pos DESC LIMIT 1)
  SELECT s.xmin::text AS xmin, (h.compacted + (SELECT count(*) FROM changes, s WHERE xid < s.xmin))::text AS revision,
    coalesce((SELECT xid::text FROM last), '0') AS xid, coalesce((SELECT pos::text FROM last), '0') AS pos
  FROM s, feed_head h WHERE h.id = 1`;

/** Deletes all but the newest $1 final changes, counting them into feed_head.compacted. */
const COMPACT = `
  WITH old AS (SELECT xid, pos FROM changes WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY xid DESC, pos DESC OFFSET $1),
  d AS (DELETE FROM changes c USING old WHERE c.xid = old.xid AND c.pos = old.pos RETURNING 1)
  UPDATE feed_head SET compacted = compacted + (SELECT count(*) FROM d) WHERE id = 1`;

interface Head {
  readonly xmin: string;
  readonly revision: string;
  readonly xid: string;
  readonly pos: string;
}

export class PostgresChangeFeed implements ChangeFeed {
  readonly #fanout: ChangeFanout;
  /** Every change at or before this has been published. */
  #cursor: Cursor;
  /** Every change of a transaction id below this has been published. */
  #through: bigint;
  readonly #waiters = new Set<{ readonly xid: bigint; readonly resolve: () => void }>();
  #pumping: Promise<void> | undefined;
  #again = false;
  #listener: pg.Client | undefined;
  /** Which LISTEN connection is up (a new number per connection), 0 while none is. */
  #listening = 0;
  #connections = 0;
  #closed = false;
  readonly #timer: NodeJS.Timeout;
  #retry: NodeJS.Timeout | undefined;
  #soon: NodeJS.Timeout | undefined;
  #backoff = 1;
  #notifying: Promise<void> | undefined;
  #notifyAgain = false;
  /** A commit here that the other replicas have not been told of: the next read carries the NOTIFY. */
  #notifyOwed = false;
  #compacting = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly options: PostgresFeedOptions,
    head: Head,
  ) {
    const fanoutOptions = options.onError ? { window: options.retain, onError: options.onError } : { window: options.retain };
    // Older revisions than the memory window cannot be read synchronously here: resync.
    this.#fanout = new ChangeFanout(Number(head.revision), fanoutOptions, () => undefined);
    this.#cursor = { xid: head.xid, pos: head.pos };
    this.#through = BigInt(head.xmin);
    this.#timer = setInterval(() => void this.pump(), options.pollMs);
    this.#timer.unref();
  }

  /** Reads and writes the feed on its own small pool, so publication never queues behind the writers'. */
  static async open(connectionString: string, options: PostgresFeedOptions): Promise<PostgresChangeFeed> {
    const pool = new pg.Pool({ connectionString, max: 2, connectionTimeoutMillis: 5000, application_name: "secretd-feed" });
    pool.on("error", (err) => options.onError?.(err));
    try {
      const head = await pool.query<Head>(HEAD);
      const feed = new PostgresChangeFeed(pool, connectionString, options, head.rows[0]!);
      await feed.#listen();
      return feed;
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  revision(): number {
    return this.#fanout.revision;
  }

  /**
   * A number for the LISTEN connection in use, 0 while there is none. A read cache may
   * answer only while it is not 0, and drops what it holds when it changes: changes of
   * other replicas made meanwhile reach this process only by the catch-up poll.
   */
  get listening(): number {
    return this.#listening;
  }

  get subscribers(): number {
    return this.#fanout.subscribers;
  }

  subscribe(listener: FeedListener, fromRevision?: number): FeedSubscription {
    return this.#fanout.subscribe(listener, fromRevision);
  }

  /**
   * Inside the caller's writing transaction: records its changes, stamped with the
   * transaction's id, and returns that id (undefined when there are none). No lock.
   */
  async record(c: Queryable, changes: readonly ChangeInput[]): Promise<string | undefined> {
    if (changes.length === 0) return undefined;
    const r = await c.query<{ xid: string }>(
      `INSERT INTO changes (xid, pos, kind, tenant, mesh, name, uid, time)
       SELECT pg_current_xact_id(), u.ord, u.kind, u.tenant, u.mesh, u.name, u.uid, $6
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u (kind, tenant, mesh, name, uid, ord)
       RETURNING xid::text`,
      [changes.map((x) => x.kind), changes.map((x) => x.tenant), changes.map((x) => x.mesh), changes.map((x) => x.name), changes.map((x) => x.uid), Date.now()],
    );
    return r.rows[0]!.xid;
  }

  /**
   * After the COMMIT of a transaction record() stamped: tells the other replicas, and
   * resolves once this process has published its changes (all before them included).
   */
  async committed(xid: string | undefined): Promise<void> {
    if (xid === undefined) return;
    const x = BigInt(xid);
    if (this.#through > x) {
      // Already published here (a read for another commit passed it): no read to carry the NOTIFY.
      this.#notify();
      return;
    }
    this.#notifyOwed = true;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      const w = {
        xid: x,
        resolve: () => {
          this.#waiters.delete(w);
          if (timer) clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.add(w);
      timer = setTimeout(() => {
        // A long transaction holds xmin back (or the database is away): derived state is re-read instead.
        this.options.onError?.(new Error(`change feed: a write was not published within ${this.options.holdMs} ms (a long transaction holds xmin back?)`));
        this.#fanout.resync(this.#fanout.revision, "unattributed");
        w.resolve();
      }, this.options.holdMs);
      void this.pump();
    });
  }

  /** One NOTIFY in flight at a time; commits during it are told by one more. */
  #notify(): void {
    if (this.#notifying) {
      this.#notifyAgain = true;
      return;
    }
    this.#notifying = (async () => {
      do {
        this.#notifyAgain = false;
        await this.pool.query({ ...NOTIFY, values: [CHANNEL] }).catch((err: unknown) => this.options.onError?.(err));
      } while (this.#notifyAgain && !this.#closed);
      this.#notifying = undefined;
    })();
  }

  /** Publishes every final change not yet published. One read at a time; a call during one runs another after it. */
  pump(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#pumping) {
      this.#again = true;
      return this.#pumping;
    }
    this.#pumping = (async () => {
      let waiting: boolean;
      try {
        do {
          this.#again = false;
          waiting = await this.#readOnce();
        } while (this.#again && !this.#closed);
      } catch (err) {
        waiting = this.#waiters.size > 0;
        this.options.onError?.(err);
      } finally {
        this.#pumping = undefined;
      }
      if (waiting) this.#pumpSoon();
    })();
    return this.#pumping;
  }

  /** Committed changes wait on an older transaction: read again shortly, backing off to 50 ms. */
  #pumpSoon(): void {
    if (this.#closed || this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.pump();
    }, this.#backoff);
    this.#backoff = Math.min(this.#backoff * 2, 50);
  }

  /** One read; true when committed changes (or writers here) wait for xmin to move. */
  async #readOnce(): Promise<boolean> {
    const notify = this.#notifyOwed;
    this.#notifyOwed = false;
    let r: pg.QueryResult<{ xmin: string; compacted: string; pending: boolean; rows: ChangeTuple[] }>;
    try {
      r = await this.pool.query({ ...(notify ? READ_NOTIFY : READ), values: [this.#cursor.xid, this.#cursor.pos] });
    } catch (err) {
      // Not told: the next read carries it (the writers wait for one; the others' poll catches up regardless).
      if (notify) this.#notifyOwed = true;
      throw err;
    }
    const { xmin, compacted, pending, rows } = r.rows[0]!;
    if (this.#fanout.revision < Number(compacted)) {
      // Compaction deleted changes this process had not published yet.
      const head = (await this.pool.query<Head>(HEAD)).rows[0]!;
      this.#cursor = { xid: head.xid, pos: head.pos };
      this.#through = BigInt(head.xmin);
      this.#fanout.resync(Number(head.revision), "compacted");
    } else if (rows.length > 0) {
      const from = this.#fanout.revision;
      const last = rows[rows.length - 1]!;
      this.#cursor = { xid: last[0], pos: last[1] };
      this.#fanout.publish(rows.map(([, , kind, tenant, mesh, name, uid], i) => ({ revision: from + 1 + i, kind, tenant, mesh, name, uid })));
      this.#compactEvery(from, this.#fanout.revision);
    }
    // A full batch may stop inside a transaction: only ids before the last one's are through.
    const through = rows.length === BATCH ? BigInt(rows[rows.length - 1]![0]) : BigInt(xmin);
    if (through > this.#through) {
      this.#through = through;
      this.#backoff = 1;
    }
    for (const w of this.#waiters) if (w.xid < this.#through) w.resolve();
    if (rows.length === BATCH) this.#again = true;
    return pending || this.#waiters.size > 0;
  }

  #compactEvery(from: number, to: number): void {
    const { pruneEvery, retain } = this.options;
    if (this.#compacting || Math.floor(to / pruneEvery) === Math.floor(from / pruneEvery) || to <= retain) return;
    this.#compacting = true;
    this.pool
      .query(COMPACT, [retain])
      .catch((err: unknown) => this.options.onError?.(err))
      .finally(() => {
        this.#compacting = false;
      });
  }
  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: "secretd-listen" });
    const lost = (err?: unknown): void => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#listening = 0;
      if (err !== undefined) this.options.onError?.(err);
      client.end().catch(() => undefined);
      this.#reconnectLater();
    };
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", (n) => {
      if (n.channel === TABLES_CHANNEL) this.#fanout.resync(this.#fanout.revision, "unattributed");
      else void this.pump();
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}; LISTEN ${TABLES_CHANNEL}`);
    if (this.#closed) {
      await client.end();
      return;
    }
    this.#listener = client;
    this.#listening = ++this.#connections;
    // Whatever committed while nobody listened.
    void this.pump();
  }

  #reconnectLater(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#listen().catch((err: unknown) => {
        this.options.onError?.(err);
        this.#reconnectLater();
      });
    }, 250);
    this.#retry.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#soon) clearTimeout(this.#soon);
    for (const w of [...this.#waiters]) w.resolve();
    const l = this.#listener;
    this.#listener = undefined;
    this.#listening = 0;
    await this.#pumping;
    await this.#notifying;
    await l?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }
}
