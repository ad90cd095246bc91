/**
 * Where pino's lines go: a file descriptor, written in batches, that never blocks on a
 * reader that is gone. pino's own destination (sonic-boom) retries a failed synchronous
 * flush forever, so `secretd serve 2>&1 | tee log` with tee gone spun on EPIPE after
 * closing the database and never exited, SIGTERM included. Here a broken pipe (or a
 * closed descriptor) ends the output for good and drops what was buffered; a full pipe
 * (EAGAIN) is retried later, and at shutdown waited out for at most FINAL_WAIT_MS.
 */
import * as fs from "node:fs";

const RETRY_MS = 10;
const FINAL_WAIT_MS = 2000;
/** Past this much unwritten output (a reader that stopped reading), new lines are dropped. */
const MAX_BUFFERED = 16 * 1024 * 1024;
const GONE = new Set(["EPIPE", "EBADF", "ECONNRESET", "EINVAL"]);
const sleeper = new Int32Array(new SharedArrayBuffer(4));

export class LogDestination {
  #chunks: string[] = [];
  #chunkChars = 0;
  #pending: Buffer | undefined;
  #retry: NodeJS.Timeout | undefined;
  #gone = false;

  /** `minLength` 0 writes every line as it comes (processes that log rarely); more batches them. */
  constructor(
    readonly fd: number,
    readonly minLength: number,
  ) {}

  /** True once the reader went away: nothing more is written. */
  get gone(): boolean {
    return this.#gone;
  }

  write(line: string): boolean {
    if (this.#gone || this.#chunkChars + (this.#pending?.length ?? 0) > MAX_BUFFERED) return true;
    this.#chunks.push(line);
    this.#chunkChars += line.length;
    if (this.#chunkChars >= this.minLength && this.#retry === undefined) this.flush();
    return true;
  }

  /** Writes what is buffered; a full pipe is retried shortly, without blocking. */
  flush(cb?: (err?: Error) => void): void {
    if (!this.#writeOut() && this.#retry === undefined) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.flush();
      }, RETRY_MS);
      this.#retry.unref();
    }
    cb?.();
  }

  /** For the last lines before exit: like flush, but waits out a full pipe for a bounded time. */
  flushSync(): void {
    const end = Date.now() + FINAL_WAIT_MS;
    while (!this.#writeOut() && Date.now() < end) Atomics.wait(sleeper, 0, 0, RETRY_MS);
  }

  /** True when nothing is left to write (written, or dropped because output is gone). */
  #writeOut(): boolean {
    for (;;) {
      if (this.#gone) return true;
      if (this.#pending === undefined) {
        if (this.#chunks.length === 0) return true;
        this.#pending = Buffer.from(this.#chunks.join(""), "utf8");
        this.#chunks = [];
        this.#chunkChars = 0;
      }
      try {
        while (this.#pending.length > 0) this.#pending = this.#pending.subarray(fs.writeSync(this.fd, this.#pending));
        this.#pending = undefined;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "";
        if (code === "EAGAIN" || code === "EINTR") return false;
        // Gone for good (the reader closed), or this batch cannot be written (ENOSPC…): drop it.
        this.#pending = undefined;
        if (GONE.has(code)) {
          this.#gone = true;
          this.#chunks = [];
          this.#chunkChars = 0;
        }
      }
    }
  }
}
