/**
 * A map bounded by the bytes its entries say they hold, least recently used out first,
 * whose entries each belong to one secret (by uid) or to several (an answer built from
 * several secrets), so every entry of a secret can be dropped at once when the change
 * feed says it changed. `onDrop` sees each entry that
 * leaves (evicted, replaced, invalidated, deleted or cleared), e.g. to zero its buffers.
 * Recency is Map order: `touch` moves an entry to the end.
 */
export interface UidLruEntry {
  /** The secret, or the secrets, the entry belongs to. */
  readonly uid: string | readonly string[];
  readonly bytes: number;
}

const uidsOf = (e: UidLruEntry): readonly string[] => (typeof e.uid === "string" ? [e.uid] : e.uid);

export class UidLru<E extends UidLruEntry> {
  readonly #entries = new Map<string, E>();
  readonly #keysByUid = new Map<string, Set<string>>();
  #bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly onDrop: (e: E) => void = () => {},
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** True when some entry of this uid is held. */
  holds(uid: string): boolean {
    return this.#keysByUid.has(uid);
  }

  /** The entry, without changing its recency. */
  peek(key: string): E | undefined {
    return this.#entries.get(key);
  }

  /** Makes a held entry the most recently used. */
  touch(key: string, e: E): void {
    this.#entries.delete(key);
    this.#entries.set(key, e);
  }

  /** Holds `e` under `key` (replacing what was there), then evicts down to the bound. */
  set(key: string, e: E): void {
    this.delete(key);
    this.#entries.set(key, e);
    this.#bytes += e.bytes;
    for (const uid of uidsOf(e)) {
      let keys = this.#keysByUid.get(uid);
      if (keys === undefined) this.#keysByUid.set(uid, (keys = new Set()));
      keys.add(key);
    }
    while (this.#bytes > this.maxBytes) this.delete(this.#entries.keys().next().value as string);
  }

  /** Drops every entry of this uid. */
  invalidate(uid: string): void {
    const keys = this.#keysByUid.get(uid);
    if (keys === undefined) return;
    for (const key of [...keys]) this.delete(key);
  }

  clear(): void {
    for (const e of this.#entries.values()) this.onDrop(e);
    this.#entries.clear();
    this.#keysByUid.clear();
    this.#bytes = 0;
  }

  delete(key: string): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= e.bytes;
    this.onDrop(e);
    for (const uid of uidsOf(e)) {
      const keys = this.#keysByUid.get(uid);
      keys?.delete(key);
      if (keys?.size === 0) this.#keysByUid.delete(uid);
    }
  }
}
