/**
 * Jittered exponential backoff between reconnects ("full jitter"): the n-th wait is a
 * random time in [base·2ⁿ/2, base·2ⁿ], capped at `maxMs` (30 s by default), so a fleet of
 * sidecars that lost one server does not come back in lock-step. `reset()` after a
 * connection proved healthy starts again from the base.
 */
export interface BackoffOptions {
  readonly baseMs?: number;
  readonly maxMs?: number;
  /** [0, 1); injectable so tests can pin the jitter. */
  readonly random?: () => number;
}

export const DEFAULT_BASE_MS = 500;
export const DEFAULT_MAX_MS = 30_000;

export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? DEFAULT_BASE_MS;
    this.maxMs = opts.maxMs ?? DEFAULT_MAX_MS;
    this.random = opts.random ?? Math.random;
  }

  /** The next wait in ms; each call doubles the ceiling until it reaches the cap. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}
