/**
 * The audit queue (SPEC §6). A call records its event in memory and goes on: no call
 * waits for a disk write. The queue is flushed as one storage transaction (through the
 * group commit, so it may share a COMMIT with secret writes) at least every second,
 * sooner when it fills a batch, and on close (SIGTERM). A SIGKILL loses what was
 * queued: at most the last second of events. Retention pruning runs on a timer, in
 * bounded chunks so it never holds the write lock for long.
 */
import type { Logger } from "../logger.js";
import type { AuditRow, Storage } from "../storage/storage.js";
import { AuditFile } from "./audit-file.js";

export interface AuditSink {
  record(event: AuditRow): void;
}

export interface AuditTrailOptions {
  readonly storage: Pick<Storage, "appendAudit" | "pruneAudit">;
  readonly logger: Logger;
  readonly retentionMs: number;
  /** JSON-lines copy; "" or undefined = none. */
  readonly file?: string | undefined;
  readonly flushIntervalMs?: number;
  /** Queue length that triggers a flush before the interval is up. */
  readonly batchSize?: number;
  /** Events held at most while storage fails; past it new events are dropped (and counted). */
  readonly maxQueue?: number;
  /** Told the duration of each flush and how many events it wrote (metrics). */
  readonly onFlush?: (seconds: number, events: number) => void;
  readonly now?: () => number;
}

const PRUNE_CHUNK = 10_000;
const MAX_PRUNE_INTERVAL_MS = 60_000;

export class AuditTrail implements AuditSink {
  #queue: AuditRow[] = [];
  #dropped = 0;
  #written = 0;
  #flushing: Promise<void> = Promise.resolve();
  #flushScheduled = false;
  #closed = false;
  #stopping = false;
  #pruneRun: Promise<number> | undefined;
  readonly #file: AuditFile | undefined;
  readonly #flushTimer: NodeJS.Timeout;
  readonly #pruneTimer: NodeJS.Timeout;
  readonly #batchSize: number;
  readonly #maxQueue: number;
  readonly #now: () => number;

  constructor(private readonly opts: AuditTrailOptions) {
    this.#batchSize = opts.batchSize ?? 4096;
    this.#maxQueue = opts.maxQueue ?? 200_000;
    this.#now = opts.now ?? Date.now;
    this.#file = opts.file ? new AuditFile(opts.file) : undefined;
    this.#flushTimer = setInterval(() => void this.flush(), opts.flushIntervalMs ?? 1000);
    this.#flushTimer.unref();
    const pruneEvery = Math.max(1000, Math.min(MAX_PRUNE_INTERVAL_MS, Math.floor(opts.retentionMs / 2)));
    this.#pruneTimer = setInterval(() => void this.prune(), pruneEvery);
    this.#pruneTimer.unref();
    void this.prune();
  }

  /** Events recorded and not yet written. */
  get depth(): number {
    return this.#queue.length;
  }

  /** Events written to storage since start. */
  get written(): number {
    return this.#written;
  }

  /** Events lost because the queue was full (storage failing for a long time). */
  get dropped(): number {
    return this.#dropped;
  }

  record(event: AuditRow): void {
    if (this.#closed || this.#queue.length >= this.#maxQueue) {
      this.#dropped++;
      return;
    }
    this.#queue.push(event);
    if (this.#queue.length >= this.#batchSize && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        void this.flush();
      });
    }
  }

  /** Writes everything queued so far; resolves once it is committed (or failed and re-queued). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#writeQueued());
    return this.#flushing;
  }

  async #writeQueued(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#batchSize);
      const started = performance.now();
      try {
        this.#file?.append(batch);
        await this.opts.storage.appendAudit(batch);
      } catch (err) {
        // Put it back, oldest first, within the bound; the next flush tries again.
        const room = Math.max(0, this.#maxQueue - this.#queue.length);
        this.#dropped += batch.length - Math.min(room, batch.length);
        this.#queue = [...batch.slice(0, room), ...this.#queue];
        this.opts.logger.error({ err, events: batch.length }, "audit flush failed; events kept for the next flush");
        return;
      }
      this.#written += batch.length;
      this.opts.onFlush?.((performance.now() - started) / 1000, batch.length);
    }
  }

  /** Deletes events past the retention, a chunk per transaction; returns how many. */
  prune(): Promise<number> {
    if (this.#stopping) return Promise.resolve(0);
    this.#pruneRun ??= this.#pruneAll().finally(() => {
      this.#pruneRun = undefined;
    });
    return this.#pruneRun;
  }

  async #pruneAll(): Promise<number> {
    let total = 0;
    try {
      const before = this.#now() - this.opts.retentionMs;
      for (;;) {
        const n = await this.opts.storage.pruneAudit(before, PRUNE_CHUNK);
        total += n;
        if (n < PRUNE_CHUNK || this.#stopping) break;
      }
    } catch (err) {
      this.opts.logger.warn({ err }, "audit retention pruning failed; it is retried later");
    }
    return total;
  }

  /** Stops the timers and writes out what is queued (SIGTERM path). */
  async close(): Promise<void> {
    clearInterval(this.#flushTimer);
    clearInterval(this.#pruneTimer);
    this.#stopping = true;
    await this.#pruneRun;
    await this.flush();
    this.#closed = true;
    this.#file?.close();
    if (this.#queue.length > 0) this.opts.logger.error({ events: this.#queue.length }, "audit events could not be written at shutdown");
  }
}
