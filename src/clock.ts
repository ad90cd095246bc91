// Wall-clock time, the ground floor: startApp hands one clock to everything that asks
// "what time is it" about secrets, grants, leases and the audit trail, so a test can
// move it instead of waiting. Production uses the real clock.

/** Milliseconds since the Unix epoch. */
export interface Clock {
  now(): number;
}

export const realClock: Clock = { now: () => Date.now() };

/**
 * Runs with the real clock, plus every advance() so far: time still passes (timestamps
 * keep their order), and a test that needs an expiry behind it moves past it at once.
 */
export class ManualClock implements Clock {
  #offset = 0;

  now(): number {
    return Date.now() + this.#offset;
  }

  /** Moves the clock forward by `ms` (never back). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError("a clock only moves forward");
    this.#offset += ms;
  }
}
