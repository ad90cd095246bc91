/**
 * A log line that may fire in a loop (a lost database is retried every 250 ms): the first
 * occurrence is logged at once, later ones at most once per interval, each with the
 * number of occurrences not logged since the previous line.
 */
export function rateLimited<A extends unknown[]>(
  intervalMs: number,
  log: (suppressed: number, ...args: A) => void,
  now: () => number = Date.now,
): (...args: A) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (...args: A) => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed++;
      return;
    }
    last = t;
    const n = suppressed;
    suppressed = 0;
    log(n, ...args);
  };
}
