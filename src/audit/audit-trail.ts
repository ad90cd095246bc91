/**
 * The audit queue (SPEC §6). A call records its event in memory and goes on: no call
 * waits for a disk write. The queue is flushed as one storage transaction (through the
 * group commit, so it may share a COMMIT with secret writes) at least every second,
 * sooner when it fills a batch, and on close (SIGTERM). A SIGKILL loses what was
 * queued: at most the last second of events. Retention pruning (by age, and by size
 * with `maxBytes`, oldest first) runs on a timer, in bounded chunks so it never holds
 * the write lock for long.
 *
 * Tenants are isolated (#27 item 6): each tenant may queue at most `tenantQuota` events
 * per flush window; beyond it its events are counted, not kept, and the window's end
 * records one "AuditEventsSuppressed" event for that tenant whose `version` is the count
 * (with the sub and peer of the last one suppressed). When the whole queue is full
 * (storage failing for long) room is made by suppressing the newest event of the tenant
 * holding the most, so one tenant's flood never costs another tenant's events.
 */
import type { Logger } from "../logger.js";
import type { AuditRow, AuditStore } from "../storage/storage.js";
import { AuditFile } from "./audit-file.js";

export interface AuditSink {
  record(event: AuditRow): void;
}

export interface AuditTrailOptions {
  readonly storage: Pick<AuditStore, "appendAudit" | "pruneAudit" | "pruneAuditBytes">;
  readonly logger: Logger;
  readonly retentionMs: number;
  /** JSON-lines copy; "" or undefined = none. */
  readonly file?: string | undefined;
  readonly flushIntervalMs?: number;
  /** Queue length that triggers a flush before the interval is up. */
  readonly batchSize?: number;
  /** Events held at most while storage fails; past it the largest tenant's are suppressed (and counted). */
  readonly maxQueue?: number;
  /** Events one tenant may queue per flush window; past it they are suppressed (and counted). */
  readonly tenantQuota?: number;
  /** Bound on the stored trail's size (storage's estimate); oldest events go first. 0 = none. */
  readonly maxBytes?: number;
  /** Told the duration of each flush and how many events it wrote (metrics). */
  readonly onFlush?: (seconds: number, events: number) => void;
  readonly now?: () => number;
}

const PRUNE_CHUNK = 10_000;
const MAX_PRUNE_INTERVAL_MS = 60_000;
export const AUDIT_TENANT_QUOTA = 50_000;
/** The method name of the event that counts a tenant's suppressed events. */
export const SUPPRESSED_METHOD = "AuditEventsSuppressed";

/** One tenant's share of the queue. */
interface TenantQueue {
  events: AuditRow[];
  /** Admitted in the current flush window. */
  admitted: number;
  /** Suppressed in the current window, with the last one (its sub and peer go into the count event). */
  suppressed: number;
  last: AuditRow | undefined;
}

export class AuditTrail implements AuditSink {
  readonly #tenants = new Map<string, TenantQueue>();
  #size = 0;
  #dropped = 0;
  #suppressed = 0;
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
  readonly #tenantQuota: number;
  readonly #now: () => number;

  constructor(private readonly opts: AuditTrailOptions) {
    this.#batchSize = opts.batchSize ?? 4096;
    this.#maxQueue = opts.maxQueue ?? 200_000;
    this.#tenantQuota = opts.tenantQuota ?? AUDIT_TENANT_QUOTA;
    this.#now = opts.now ?? Date.now;
    this.#file = opts.file ? new AuditFile(opts.file) : undefined;
    this.#flushTimer = setInterval(() => void this.endWindow(), opts.flushIntervalMs ?? 1000);
    this.#flushTimer.unref();
    const pruneEvery = Math.max(1000, Math.min(MAX_PRUNE_INTERVAL_MS, Math.floor(opts.retentionMs / 2)));
    this.#pruneTimer = setInterval(() => void this.prune(), pruneEvery);
    this.#pruneTimer.unref();
    void this.prune();
  }

  /** Events recorded and not yet written. */
  get depth(): number {
    return this.#size;
  }

  /** Events written to storage since start. */
  get written(): number {
    return this.#written;
  }

  /** Events lost after shutdown began (every other loss is counted in a suppressed event). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events suppressed (past a tenant's quota, or to make room) since start. */
  get suppressed(): number {
    return this.#suppressed;
  }

  record(event: AuditRow): void {
    if (this.#closed) {
      this.#dropped++;
      return;
    }
    const t = this.#tenant(event.tenant);
    if (t.admitted >= this.#tenantQuota || !this.#makeRoom(t)) {
      this.#suppress(t, event);
      return;
    }
    t.admitted++;
    t.events.push(event);
    this.#size++;
    if (this.#size >= this.#batchSize && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        void this.flush();
      });
    }
  }

  /**
   * The end of a flush window: each tenant's suppressed events become one event that
   * counts them, quotas start over, and everything queued is written.
   */
  endWindow(): Promise<void> {
    const now = this.#now();
    for (const [tenant, t] of this.#tenants) {
      if (t.suppressed > 0 && t.last !== undefined) {
        t.events.push({ tenant, time: now, requestId: "", method: SUPPRESSED_METHOD, sub: t.last.sub, mesh: "", name: "", version: t.suppressed, keys: [], code: "RESOURCE_EXHAUSTED", peer: t.last.peer, stage: "" });
        this.#size++;
        this.opts.logger.warn({ tenant, events: t.suppressed }, "audit events suppressed past the tenant's quota");
      }
      t.suppressed = 0;
      t.last = undefined;
      t.admitted = 0;
      if (t.events.length === 0) this.#tenants.delete(tenant);
    }
    return this.flush();
  }

  /** Writes everything queued so far; resolves once it is committed (or failed and re-queued). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#writeQueued());
    return this.#flushing;
  }

  #tenant(tenant: string): TenantQueue {
    let t = this.#tenants.get(tenant);
    if (t === undefined) this.#tenants.set(tenant, (t = { events: [], admitted: 0, suppressed: 0, last: undefined }));
    return t;
  }

  #suppress(t: TenantQueue, event: AuditRow): void {
    t.suppressed++;
    t.last = event;
    this.#suppressed++;
  }

  /** Room for one more event of `t` in a full queue: the newest event of the tenant holding the most goes. */
  #makeRoom(t: TenantQueue): boolean {
    if (this.#size < this.#maxQueue) return true;
    let largest: TenantQueue | undefined;
    for (const q of this.#tenants.values()) if (largest === undefined || q.events.length > largest.events.length) largest = q;
    if (largest === undefined || largest === t || largest.events.length <= t.events.length + 1) return false;
    this.#suppressLargest();
    return true;
  }

  /** Up to one batch, taken from every tenant in turn (each tenant's events stay in order). */
  #takeBatch(): AuditRow[] {
    const batch: AuditRow[] = [];
    const share = Math.max(1, Math.ceil(this.#batchSize / Math.max(1, this.#tenants.size)));
    while (batch.length < this.#batchSize && this.#size > 0) {
      for (const t of this.#tenants.values()) {
        const n = Math.min(share, this.#batchSize - batch.length, t.events.length);
        if (n === 0) continue;
        for (const e of t.events.splice(0, n)) batch.push(e);
        this.#size -= n;
        if (batch.length === this.#batchSize) break;
      }
    }
    return batch;
  }

  /** The newest event of the tenant holding the most is suppressed. */
  #suppressLargest(): void {
    let largest: TenantQueue | undefined;
    for (const q of this.#tenants.values()) if (largest === undefined || q.events.length > largest.events.length) largest = q;
    this.#suppress(largest!, largest!.events.pop()!);
    this.#size--;
  }

  async #writeQueued(): Promise<void> {
    while (this.#size > 0) {
      const batch = this.#takeBatch();
      const started = performance.now();
      try {
        this.#file?.append(batch);
        await this.opts.storage.appendAudit(batch);
      } catch (err) {
        // Put it back, each tenant's oldest first; the next flush tries again. Past the
        // bound, the largest tenant's newest events are suppressed (and counted).
        const byTenant = new Map<string, AuditRow[]>();
        for (const e of batch) {
          let list = byTenant.get(e.tenant);
          if (list === undefined) byTenant.set(e.tenant, (list = []));
          list.push(e);
        }
        for (const [tenant, events] of byTenant) {
          const t = this.#tenant(tenant);
          t.events = [...events, ...t.events];
        }
        this.#size += batch.length;
        while (this.#size > this.#maxQueue) this.#suppressLargest();
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
      const maxBytes = this.opts.maxBytes ?? 0;
      let bySize = 0;
      while (maxBytes > 0 && !this.#stopping) {
        const n = await this.opts.storage.pruneAuditBytes(maxBytes, PRUNE_CHUNK);
        bySize += n;
        if (n < PRUNE_CHUNK) break;
      }
      if (bySize > 0) this.opts.logger.warn({ events: bySize, maxBytes }, "audit trail over --audit-max-bytes: oldest events deleted before their retention");
      total += bySize;
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
    await this.endWindow();
    this.#closed = true;
    this.#file?.close();
    if (this.#size > 0) this.opts.logger.error({ events: this.#size }, "audit events could not be written at shutdown");
  }
}
