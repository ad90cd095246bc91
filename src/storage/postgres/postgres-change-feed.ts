/**
 * The change feed on PostgreSQL. Every writing transaction of PostgresStorage takes the
 * next revisions from the one-row feed_head (migration 2) just before COMMIT, writes one
 * `changes` row per change and NOTIFYs the channel; the row lock on feed_head makes
 * revisions follow commit order without gaps. Subscribers hear of changes from pump(),
 * which reads "changes after the last revision seen":
 * - own commits: the writer awaits committed() after COMMIT, so subscribers hear of a
 *   write before its caller is answered (from memory when nothing came in between);
 * - other replicas' commits: LISTEN on a dedicated connection wakes pump();
 * - a missed notification (the listening connection dropped, a replica slept): a catch-up
 *   pump on reconnect and every `pollMs`, by revision, so nothing is lost, only late.
 * Compaction deletes rows older than the last `retain` revisions (inside a writing
 * transaction, every `pruneEvery` revisions); a subscriber behind it gets "resync".
 * A write to the secret tables that secretd did not make (plain SQL, a restore: see
 * migration 8's trigger) is heard on TABLES_CHANNEL and sent as "resync"/"unattributed",
 * as SQLite does when PRAGMA data_version moves without a change row.
 */
import pg from "pg";
import { ChangeFanout, type Change, type ChangeFeed, type ChangeKind, type FeedListener, type FeedSubscription } from "../change-feed.js";

export const CHANNEL = "secretd_changes";
/** Notified by migration 8's trigger when a session not marked as secretd's writes a secret, version or grant row. */
export const TABLES_CHANNEL = "secretd_tables";

export interface PostgresFeedOptions {
  /** Catch-up read interval when no notification came (ms). */
  readonly pollMs: number;
  /** Change rows kept in the table, and in memory for resuming subscribers. */
  readonly retain: number;
  /** Compaction runs inside every pruneEvery-th revision's transaction. */
  readonly pruneEvery: number;
  readonly onError?: (err: unknown) => void;
}

export const POSTGRES_FEED_DEFAULTS: PostgresFeedOptions = { pollMs: 1000, retain: 10_000, pruneEvery: 1_000 };

export type ChangeInput = Omit<Change, "revision">;

interface ChangeRecord {
  revision: string;
  kind: ChangeKind;
  tenant: string;
  mesh: string;
  name: string;
  uid: string;
}

type Queryable = Pick<pg.PoolClient, "query">;

export class PostgresChangeFeed implements ChangeFeed {
  readonly #fanout: ChangeFanout;
  #pumping: Promise<void> | undefined;
  #again = false;
  #listener: pg.Client | undefined;
  /** Which LISTEN connection is up (a new number per connection), 0 while none is. */
  #listening = 0;
  #connections = 0;
  #closed = false;
  readonly #timer: NodeJS.Timeout;
  #retry: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
    private readonly options: PostgresFeedOptions,
    head: number,
  ) {
    const fanoutOptions = options.onError ? { window: options.retain, onError: options.onError } : { window: options.retain };
    // Older revisions than the memory window cannot be read synchronously here: resync.
    this.#fanout = new ChangeFanout(head, fanoutOptions, () => undefined);
    this.#timer = setInterval(() => void this.pump(), options.pollMs);
    this.#timer.unref();
  }

  static async open(pool: pg.Pool, connectionString: string, options: PostgresFeedOptions): Promise<PostgresChangeFeed> {
    const head = await pool.query<{ revision: string }>("SELECT revision FROM feed_head WHERE id = 1");
    const feed = new PostgresChangeFeed(pool, connectionString, options, Number(head.rows[0]!.revision));
    await feed.#listen();
    return feed;
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
   * Inside the caller's writing transaction, just before its COMMIT: takes revisions for
   * the changes (holding feed_head's row lock until COMMIT), records them, notifies.
   */
  async record(c: Queryable, changes: readonly ChangeInput[]): Promise<Change[]> {
    if (changes.length === 0) return [];
    // One round trip: next revisions (row lock on feed_head until COMMIT), change rows, NOTIFY.
    const r = await c.query<{ revision: string }>(
      `WITH h AS (UPDATE feed_head SET revision = revision + $1 WHERE id = 1 RETURNING revision),
       ins AS (
         INSERT INTO changes (revision, kind, tenant, mesh, name, uid, time)
         SELECT h.revision - $1 + u.ord, u.kind, u.tenant, u.mesh, u.name, u.uid, $7
         FROM h, unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u (kind, tenant, mesh, name, uid, ord)),
       n AS (SELECT pg_notify($8, h.revision::text) FROM h)
       SELECT h.revision FROM h, n`,
      [
        changes.length,
        changes.map((x) => x.kind),
        changes.map((x) => x.tenant),
        changes.map((x) => x.mesh),
        changes.map((x) => x.name),
        changes.map((x) => x.uid),
        Date.now(),
        CHANNEL,
      ],
    );
    const last = Number(r.rows[0]!.revision);
    const first = last - changes.length + 1;
    const { pruneEvery, retain } = this.options;
    if (Math.floor(last / pruneEvery) > Math.floor((first - 1) / pruneEvery) && last > retain) {
      await c.query("DELETE FROM changes WHERE revision <= $1", [last - retain]);
      await c.query("UPDATE feed_head SET compacted = GREATEST(compacted, $1) WHERE id = 1", [last - retain]);
    }
    return changes.map((x, i) => ({ ...x, revision: first + i }));
  }

  /**
   * After the COMMIT of changes record() numbered: when they follow straight on what
   * subscribers have heard (revisions have no gaps), they are published from memory;
   * otherwise another replica committed in between, and pump() reads the table.
   */
  async committed(changes: readonly Change[]): Promise<void> {
    const first = changes[0];
    if (first === undefined) return;
    if (first.revision === this.#fanout.revision + 1) this.#fanout.publish(changes);
    else if (first.revision > this.#fanout.revision) await this.pump();
  }

  /** Publishes every committed change not yet published. One read at a time; a call during one runs another after it. */
  pump(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#pumping) {
      this.#again = true;
      return this.#pumping;
    }
    this.#pumping = (async () => {
      try {
        do {
          this.#again = false;
          await this.#readOnce();
        } while (this.#again && !this.#closed);
      } catch (err) {
        this.options.onError?.(err);
      } finally {
        this.#pumping = undefined;
      }
    })();
    return this.#pumping;
  }

  async #readOnce(): Promise<void> {
    const from = this.#fanout.revision;
    const rows = await this.pool.query<ChangeRecord>(
      "SELECT revision, kind, tenant, mesh, name, uid FROM changes WHERE revision > $1 ORDER BY revision LIMIT 10000",
      [from],
    );
    if (rows.rows.length === 0) return;
    const changes: Change[] = rows.rows.map((r) => ({ revision: Number(r.revision), kind: r.kind, tenant: r.tenant, mesh: r.mesh, name: r.name, uid: r.uid }));
    if (changes[0]!.revision > from + 1) {
      // Revisions have no gaps: a missing one was compacted away while this process was behind.
      this.#fanout.resync(changes[changes.length - 1]!.revision, "compacted");
    } else {
      this.#fanout.publish(changes);
    }
    if (rows.rows.length === 10000) this.#again = true;
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
    const l = this.#listener;
    this.#listener = undefined;
    this.#listening = 0;
    await this.#pumping;
    await l?.end().catch(() => undefined);
  }
}
