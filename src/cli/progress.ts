/**
 * Progress of long CLI work (keys rotate, doctor, apply of many objects), on stderr and
 * only when stderr is a terminal: redirected output and CI logs stay exactly as before.
 * One line, rewritten in place at most every 100 ms, and erased by done().
 */
export interface Progress {
  /** The current state, e.g. "1200 of 5000 data keys"; cheap to call per item. */
  update(text: string): void;
  /** Erases the progress line; `summary` (if given) is printed in its place. */
  done(summary?: string): void;
}

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(s: string): unknown;
}

const EVERY_MS = 100;

export function progress(label: string, stream: ProgressStream = process.stderr, now: () => number = Date.now): Progress {
  if (stream.isTTY !== true) return { update: () => {}, done: (summary) => void (summary === undefined || stream.write(`${summary}\n`)) };
  let last = Number.NEGATIVE_INFINITY;
  let shown = false;
  return {
    update(text) {
      const t = now();
      if (t - last < EVERY_MS) return;
      last = t;
      shown = true;
      stream.write(`\r\x1b[K${label}: ${text}`);
    },
    done(summary) {
      if (shown) stream.write("\r\x1b[K");
      if (summary !== undefined) stream.write(`${summary}\n`);
    },
  };
}
