/**
 * Group commit: writes submitted during one event-loop turn run in ONE immediate
 * transaction, each inside its own savepoint, so a failing write rolls back alone and
 * the batch pays one COMMIT (one fsync with synchronous=FULL) instead of one each.
 * Every promise settles only after that COMMIT returned, so nothing is acknowledged
 * before it is on disk. While a commit blocks the event loop, new calls queue up and
 * form the next batch: the busier the server, the larger the batches. `afterCommit` runs
 * right after each COMMIT, before any promise settles (the change feed publishes there),
 * and is told how long the transaction took (BEGIN to COMMIT, not the wait for the lock).
 *
 * A batch also stops taking writes once it has run for `maxBatchMs` (#27): the rest wait
 * for the next batch, and the event loop serves every other caller in between, so a
 * burst of legal writes (a tenant dropping 1,000 watches at once: one lease delete each)
 * costs others a slice, not the whole burst. A single write is never split.
 *
 * Several processes on one file (`--workers N`): SQLite has one write lock. Taking it
 * with the connection's busy_timeout would make SQLite's busy handler *sleep* the whole
 * event loop (1, 2, 5, 10 … ms) while another worker commits, so reads and streams on
 * this worker would stall too (measured: ~4 % of a worker's wall time asleep under
 * creates through two workers). Instead the batch asks for the lock without waiting
 * (busy_timeout 0 for that one BEGIN IMMEDIATE); when another process holds it, the
 * batch is retried after `retryMs` while the loop keeps serving, and the writes that
 * arrive meanwhile join it. After `maxWaitMs` of retrying, one last attempt waits with
 * the connection's normal busy_timeout, so a lock held for ever still ends in BUSY.
 */
import type Database from "better-sqlite3";

interface Pending {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

export interface GroupCommitOptions {
  /** Most writes in one transaction. */
  readonly maxBatch: number;
  /** How long a batch keeps taking writes (ms); the rest wait for the next one. */
  readonly maxBatchMs: number;
  /** Delay between attempts at the write lock while another connection holds it (ms). */
  readonly retryMs: number;
  /** How long to keep retrying without blocking before one blocking attempt (ms). */
  readonly maxWaitMs: number;
  /** The connection's busy_timeout (ms), restored after each non-waiting attempt. */
  readonly busyTimeoutMs: number;
}

export const GROUP_COMMIT_DEFAULTS: GroupCommitOptions = { maxBatch: 256, maxBatchMs: 8, retryMs: 1, maxWaitMs: 5_000, busyTimeoutMs: 5_000 };

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_BUSY" || code === "SQLITE_BUSY_SNAPSHOT" || code === "SQLITE_BUSY_RECOVERY";
}

export class GroupCommit {
  #queue: Pending[] = [];
  #scheduled = false;
  /** When the current batch first found the lock taken (0: not waiting). */
  #waitingSince = 0;
  /** Batches that found the write lock held by another connection and waited without blocking. */
  #lockWaits = 0;
  readonly #savepoint: (fn: () => unknown) => unknown;
  readonly #stmt;
  readonly #options: GroupCommitOptions;

  constructor(
    private readonly db: Database.Database,
    /** Told how long the batch transaction took, COMMIT included (the commit-latency metric reads it). */
    private readonly afterCommit: (seconds: number) => void = () => {},
    options: Partial<GroupCommitOptions> = {},
  ) {
    this.#options = { ...GROUP_COMMIT_DEFAULTS, ...options };
    // Called inside the open batch transaction, a better-sqlite3 transaction function is a SAVEPOINT.
    this.#savepoint = db.transaction((fn: () => unknown) => fn());
    this.#stmt = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
    };
  }

  /** How many batches waited for another connection's write lock (for tests and diagnostics). */
  get lockWaits(): number {
    return this.#lockWaits;
  }

  submit<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** BEGIN IMMEDIATE; false when another connection holds the write lock and we may still wait. */
  #begin(): boolean {
    const waitedMs = this.#waitingSince === 0 ? 0 : Date.now() - this.#waitingSince;
    if (waitedMs >= this.#options.maxWaitMs) {
      this.#stmt.begin.run(); // the last attempt blocks with busy_timeout; BUSY then fails the batch
      return true;
    }
    this.db.pragma("busy_timeout = 0");
    try {
      this.#stmt.begin.run();
      return true;
    } catch (err) {
      if (!isBusy(err)) throw err;
      return false;
    } finally {
      this.db.pragma(`busy_timeout = ${this.#options.busyTimeoutMs}`);
    }
  }

  #flush(): void {
    let began: boolean;
    try {
      began = this.#begin();
    } catch (error) {
      this.#waitingSince = 0;
      this.#settleAll(this.#queue.splice(0, this.#options.maxBatch), error);
      this.#next();
      return;
    }
    if (!began) {
      if (this.#waitingSince === 0) {
        this.#waitingSince = Date.now();
        this.#lockWaits++;
      }
      setTimeout(() => this.#flush(), this.#options.retryMs);
      return;
    }
    this.#waitingSince = 0;
    const { maxBatch, maxBatchMs } = this.#options;
    const outcomes: Outcome[] = [];
    const started = performance.now();
    let taken = 0;
    try {
      while (taken < this.#queue.length && taken < maxBatch && (taken === 0 || performance.now() - started < maxBatchMs)) {
        const item = this.#queue[taken++]!;
        try {
          outcomes.push({ ok: true, value: this.#savepoint(item.run) });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
      this.#stmt.commit.run();
    } catch (error) {
      // The COMMIT itself failed: nothing of the batch landed.
      if (this.db.inTransaction) this.#stmt.rollback.run();
      this.#settleAll(this.#queue.splice(0, taken), error);
      this.#next();
      return;
    }
    const batch = this.#queue.splice(0, taken);
    this.#next();
    this.afterCommit((performance.now() - started) / 1000);
    batch.forEach((item, i) => {
      const o = outcomes[i]!;
      if (o.ok) item.resolve(o.value);
      else item.reject(o.error);
    });
  }

  #next(): void {
    if (this.#queue.length > 0) setImmediate(() => this.#flush());
    else this.#scheduled = false;
  }

  #settleAll(batch: readonly Pending[], error: unknown): void {
    for (const item of batch) item.reject(error);
  }
}
