/**
 * Gives memory back once the server goes quiet (the idea of the JVM's periodic G1
 * collection, JEP 346). A burst of work, such as thousands of watches opening, leaves
 * garbage in V8's old generation that nothing collects while the server then idles:
 * 10,000 idle watches hold ~30 % more RSS than they need until the next major GC, which an
 * idle server never reaches. So every CHECK_MS the server looks at its event loop: when it
 * was almost idle over the whole last interval and the heap grew by GROWN_BYTES since the
 * last collection, it runs one full collection.
 *
 * A collection blocks the loop (tens of ms for a 100 MB heap), so it runs only when the
 * loop was idle, at most once per interval; a busy server is never interrupted by it.
 * It needs V8's `gc` function, which bin/secretd exposes (`--expose-gc`); without it
 * (`node dist/main.js`) nothing runs.
 */
import { performance, type EventLoopUtilization } from "node:perf_hooks";

export const CHECK_MS = 5000;
/** The event loop's busy share over the interval below which the server counts as idle. */
export const IDLE_UTILIZATION = 0.02;
/** Heap growth since the last collection that is worth one. */
export const GROWN_BYTES = 16 * 1024 * 1024;

export interface IdleGcDeps {
  /** V8's full collection (globalThis.gc under --expose-gc). */
  readonly gc: () => void;
  /** Heap bytes in use now. */
  readonly heapUsed: () => number;
  /** The event loop's utilization since `prev` (perf_hooks' shape). */
  readonly utilization: (prev?: EventLoopUtilization) => EventLoopUtilization;
}

/** One interval's decision; exported for the test. Returns whether it collected. */
export class IdleGc {
  #last: EventLoopUtilization;
  #baseline: number;
  collections = 0;

  constructor(private readonly deps: IdleGcDeps) {
    this.#last = deps.utilization();
    this.#baseline = deps.heapUsed();
  }

  check(): boolean {
    const now = this.deps.utilization();
    const busy = this.deps.utilization(this.#last).utilization;
    this.#last = now;
    const used = this.deps.heapUsed();
    // The heap shrinking (a collection of V8's own) lowers the baseline too.
    if (used < this.#baseline) this.#baseline = used;
    if (busy > IDLE_UTILIZATION || used - this.#baseline < GROWN_BYTES) return false;
    this.deps.gc();
    this.collections++;
    this.#baseline = this.deps.heapUsed();
    this.#last = this.deps.utilization();
    return true;
  }
}

/** Starts the idle check when V8's gc is exposed; returns its stop. */
export function startIdleGc(): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return () => undefined;
  const idle = new IdleGc({ gc, heapUsed: () => process.memoryUsage().heapUsed, utilization: (prev) => performance.eventLoopUtilization(prev) });
  const timer = setInterval(() => idle.check(), CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
