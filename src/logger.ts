/**
 * pino JSON logs. Writes are buffered (one unbuffered line per call cost a third of
 * GetSecret throughput) and flushed at least every second and on shutdown, through a
 * destination that never blocks on a reader that is gone (log-destination.ts). Redaction
 * is a second line of defence: code never passes values, tokens or keys to the logger.
 */
import pino, { type Logger } from "pino";
import { LogDestination } from "./log-destination.js";

export type { Logger };

export interface LoggerHandle {
  readonly logger: Logger;
  /** Writes out everything buffered, synchronously (bounded: a gone reader drops it). */
  flush(): void;
}

export const REDACT_PATHS = [
  "authorization",
  "token",
  "*.authorization",
  "*.token",
  "data",
  "*.data",
  "stringData",
  "*.stringData",
  "value",
  "*.value",
  "key",
  "secret",
];

/**
 * pino's isoTime, made once per millisecond: at thousands of lines a second most lines
 * share their millisecond with the previous one, and a Date plus toISOString per line
 * was ~2 % of a GetSecret's CPU.
 */
let lastMs = -1;
let lastTime = "";
export function isoTime(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastTime = `,"time":"${new Date(ms).toISOString()}"`;
  }
  return lastTime;
}

/**
 * `sync: true` writes each line as it is logged: for processes that log rarely and must
 * not lose a line on exit (sidecar, run), not for the server's hot path.
 */
export function createLogger(level: string, fd = 1, opts: { sync?: boolean } = {}): LoggerHandle {
  const dest = new LogDestination(fd, opts.sync ? 0 : 8192);
  const logger = pino(
    {
      level,
      base: { service: "secretd" },
      timestamp: isoTime,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  const timer = setInterval(() => dest.flush(), 1000);
  timer.unref();
  // Whatever path ends the process (a refused start, process.exit), buffered lines go out.
  process.once("exit", () => dest.flushSync());
  return {
    logger,
    flush() {
      dest.flushSync();
    },
  };
}
