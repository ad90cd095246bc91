/**
 * Group commit: writes submitted during one event-loop turn run in ONE immediate
 * transaction, each inside its own savepoint, so a failing write rolls back alone and
 * the batch pays one COMMIT (one fsync with synchronous=FULL) instead of one each.
 * Every promise settles only after that COMMIT returned, so nothing is acknowledged
 * before it is on disk. While a commit blocks the event loop, new calls queue up and
 * form the next batch: the busier the server, the larger the batches. `afterCommit` runs
 * right after each COMMIT, before any promise settles (the change feed publishes there),
 * and is told how long the transaction took.
 */
import type Database from "better-sqlite3";

interface Pending {
  readonly run: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

export class GroupCommit {
  #queue: Pending[] = [];
  #scheduled = false;
  readonly #savepoint: (fn: () => unknown) => unknown;
  readonly #batch: (items: readonly Pending[]) => Outcome[];

  constructor(
    db: Database.Database,
    /** Told how long the batch transaction took, COMMIT included (the commit-latency metric reads it). */
    private readonly afterCommit: (seconds: number) => void = () => {},
    private readonly maxBatch = 256,
  ) {
    // Called inside the batch transaction, a better-sqlite3 transaction function is a SAVEPOINT.
    this.#savepoint = db.transaction((fn: () => unknown) => fn());
    this.#batch = db.transaction((items: readonly Pending[]) =>
      items.map((item): Outcome => {
        try {
          return { ok: true, value: this.#savepoint(item.run) };
        } catch (error) {
          return { ok: false, error };
        }
      }),
    ).immediate;
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

  #flush(): void {
    const batch = this.#queue.splice(0, this.maxBatch);
    if (this.#queue.length > 0) setImmediate(() => this.#flush());
    else this.#scheduled = false;
    let outcomes: Outcome[];
    const started = performance.now();
    try {
      outcomes = this.#batch(batch);
    } catch (error) {
      for (const item of batch) item.reject(error); // the COMMIT itself failed: nothing landed
      return;
    }
    this.afterCommit((performance.now() - started) / 1000);
    batch.forEach((item, i) => {
      const o = outcomes[i]!;
      if (o.ok) item.resolve(o.value);
      else item.reject(o.error);
    });
  }
}
