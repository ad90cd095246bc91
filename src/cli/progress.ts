/**
 * A one-line "what N of M" counter on stderr, shown only when stderr is a terminal and
 * the work is long enough to want one; redrawn in place and erased before any other
 * output line, so piped or logged output never holds it.
 */
export interface Progress {
  /** Sets the counter to `done` of the total. */
  tick(done: number): void;
  /** Writes a line to stdout without tearing the counter. */
  line(text: string): void;
  done(): void;
}

const CLEAR = "\r\x1b[K";
/** Fewer objects than this finish before a counter would be read. */
export const PROGRESS_MIN_ITEMS = 20;

export function progress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress {
  const shown = stream.isTTY === true && total >= PROGRESS_MIN_ITEMS;
  let last = "";
  const draw = (): void => {
    if (shown && last !== "") stream.write(`${CLEAR}${last}`);
  };
  return {
    tick(done) {
      last = `${label} ${done}/${total}`;
      draw();
    },
    line(text) {
      if (shown && last !== "") stream.write(CLEAR);
      process.stdout.write(text);
      draw();
    },
    done() {
      if (shown && last !== "") stream.write(CLEAR);
      last = "";
    },
  };
}
