/**
 * At most `limit` runs at a time per tenant; the rest wait their turn, first come first
 * served (#27). For work that is sliced to yield the event loop (ListSecrets): slicing
 * alone lets one tenant's many calls in flight take turn after turn, each of them a slice,
 * so another tenant's call waits behind one slice per call in flight; behind this gate it
 * waits behind at most `limit` slices of any one tenant. Per server process.
 */
export class TenantGate {
  readonly #active = new Map<string, { running: number; waiting: Array<() => void> }>();

  constructor(readonly limit: number) {}

  async run<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    let t = this.#active.get(tenant);
    if (t === undefined) {
      t = { running: 0, waiting: [] };
      this.#active.set(tenant, t);
    }
    if (t.running >= this.limit) await new Promise<void>((resolve) => t.waiting.push(resolve));
    else t.running++;
    try {
      return await work();
    } finally {
      const next = t.waiting.shift();
      if (next !== undefined) next(); // the slot passes on: running stays the same
      else if (--t.running === 0) this.#active.delete(tenant);
    }
  }

  /** Runs in progress for `tenant` (tests and diagnosis). */
  running(tenant: string): number {
    return this.#active.get(tenant)?.running ?? 0;
  }
}
