/**
 * The server's audit writes on SQLite, from a worker thread with its own connection
 * (sqlite-audit-thread.ts). A flush of a second's events is thousands of INSERTs and an
 * fsync: run on the event loop it stalled every call for tens of milliseconds once a
 * second, the open-loop p99 of GetSecret (BENCHMARKS.md). Here the loop only posts the
 * batch. The thread's commits are foreign to the server's connection, and mark
 * themselves as housekeeping so that its change feed does not resync on them.
 *
 * A thread that dies fails the calls in flight (the audit queue keeps their events
 * and retries) and is started again by the next call.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { AuditRow, AuditStore } from "../storage.js";

type Request =
  | { readonly op: "append"; readonly events: readonly AuditRow[] }
  | { readonly op: "prune"; readonly before: number; readonly limit: number }
  | { readonly op: "pruneBytes"; readonly maxBytes: number; readonly limit: number };

export type AuditThreadRequest = Request & { readonly id: number };

export type AuditThreadReply = { readonly id: number; readonly n: number } | { readonly id: number; readonly error: { readonly message: string; readonly code: string | undefined } };

interface Pending {
  readonly resolve: (n: number) => void;
  readonly reject: (err: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

const THREAD_HEAP = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 128 };

/** The compiled thread script; run from the TypeScript sources (tests), the built copy in dist/. */
function threadScript(): string {
  const here = fileURLToPath(import.meta.url);
  const dir = path.dirname(here);
  if (!here.endsWith(".ts")) return path.join(dir, "sqlite-audit-thread.js");
  const src = path.resolve(dir, "../..");
  return path.join(path.dirname(src), "dist", path.relative(src, dir), "sqlite-audit-thread.js");
}

export class SqliteAuditWriter implements Pick<AuditStore, "appendAudit" | "pruneAudit" | "pruneAuditBytes"> {
  #thread: Thread | undefined;
  #seq = 0;
  #closed = false;

  constructor(
    private readonly file: string,
    private readonly busyTimeoutMs: number,
  ) {}

  async appendAudit(events: readonly AuditRow[]): Promise<void> {
    if (events.length > 0) await this.#call({ op: "append", events });
  }

  pruneAudit(before: number, limit: number): Promise<number> {
    return this.#call({ op: "prune", before, limit });
  }

  pruneAuditBytes(maxBytes: number, limit: number): Promise<number> {
    return this.#call({ op: "pruneBytes", maxBytes, limit });
  }

  /** Ends the thread; calls still in flight fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const t = this.#thread;
    this.#thread = undefined;
    if (t !== undefined) await t.worker.terminate();
  }

  #call(request: Request): Promise<number> {
    if (this.#closed) return Promise.reject(new Error("the audit writer is closed"));
    const t = this.#thread ?? this.#start();
    const id = ++this.#seq;
    return new Promise<number>((resolve, reject) => {
      if (t.pending.size === 0) t.worker.ref();
      t.pending.set(id, { resolve, reject });
      t.worker.postMessage({ id, ...request });
    });
  }

  #start(): Thread {
    const worker = new Worker(threadScript(), {
      workerData: { file: this.file, busyTimeoutMs: this.busyTimeoutMs },
      // A small young generation keeps the thread's share of the RSS budget small (a batch is a few MiB).
      resourceLimits: THREAD_HEAP,
    });
    const t: Thread = { worker, pending: new Map() };
    // Holds the process open only while a call is in flight.
    worker.unref();
    worker.on("message", (reply: AuditThreadReply) => {
      const p = t.pending.get(reply.id);
      if (p === undefined) return;
      t.pending.delete(reply.id);
      if (t.pending.size === 0) worker.unref();
      if ("n" in reply) p.resolve(reply.n);
      else p.reject(Object.assign(new Error(reply.error.message), reply.error.code === undefined ? {} : { code: reply.error.code }));
    });
    const fail = (err: Error): void => {
      if (this.#thread === t) this.#thread = undefined;
      for (const p of t.pending.values()) p.reject(err);
      t.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the audit writer thread exited (code ${code})`)));
    this.#thread = t;
    return t;
  }
}
