/**
 * Concurrent reads of the same rows share one SELECT (PostgreSQL). After a change, every
 * watch of the secret on a replica re-reads it at once; without this each sends its own
 * statement (100 watches: 100 statements queued on the pool, the last answered ~90 ms
 * after the first, docs/BENCHMARKS.md "Change-to-watcher across replicas").
 * A caller joins a read in flight only when the read cache's epoch has not moved since
 * that read began: no change and no clear was delivered after its SELECT was sent, so its
 * rows are as fresh as a read of the caller's own would be (read-cache.ts, "Coherence on
 * PostgreSQL"). Otherwise the caller starts a read of its own, which later callers join.
 */
export class ReadFlights<T> {
  readonly #inFlight = new Map<string, { readonly epoch: number; readonly result: Promise<T> }>();

  /** `read()`'s result, or that of the same `key`'s read in flight begun at this `epoch`. */
  run(key: string, epoch: number, read: () => Promise<T>): Promise<T> {
    const flight = this.#inFlight.get(key);
    if (flight !== undefined && flight.epoch === epoch) return flight.result;
    const entry = { epoch, result: read() };
    this.#inFlight.set(key, entry);
    const done = (): void => {
      if (this.#inFlight.get(key) === entry) this.#inFlight.delete(key);
    };
    entry.result.then(done, done);
    return entry.result;
  }

  /** Reads in flight (tests). */
  get size(): number {
    return this.#inFlight.size;
  }
}
