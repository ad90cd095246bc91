/**
 * A bounded, least-recently-used cache of unwrapped data keys, so reading a version
 * again skips the KEK unwrap (an AES-GCM key schedule and decrypt per read).
 *
 * An entry is found only by the exact wrapped-key bytes together with the exact AAD it
 * was unwrapped under, so the cache never yields a key for a row that the KEK would
 * have refused: a wrapped key copied to another row (other AAD) misses and is unwrapped,
 * and fails, as before. Keys are zeroed when evicted and when the cache is cleared (the
 * keyring holder clears it whenever the keyring changes).
 */
interface Entry {
  readonly aad: Buffer;
  readonly key: Buffer;
}

/** About 0.5 KB per entry: 4,096 entries hold ~2 MB. */
export const DATA_KEY_CACHE_ENTRIES = 4096;

export class DataKeyCache {
  readonly #entries = new Map<string, Entry>();

  constructor(readonly capacity: number = DATA_KEY_CACHE_ENTRIES) {}

  get size(): number {
    return this.#entries.size;
  }

  /** The cached key for this wrapped key and AAD. The caller must not modify or keep it. */
  get(wrapped: Uint8Array, aad: Buffer): Buffer | undefined {
    const id = idOf(wrapped);
    const e = this.#entries.get(id);
    if (e === undefined || !e.aad.equals(aad)) return undefined;
    this.#entries.delete(id); // re-insert: Map order is the recency order
    this.#entries.set(id, e);
    return e.key;
  }

  /**
   * Takes ownership of `key` (it is zeroed on eviction) and returns true, or returns
   * false when the cache holds nothing (capacity 0): the caller then wipes it.
   */
  add(wrapped: Uint8Array, aad: Buffer, key: Buffer): boolean {
    if (this.capacity <= 0) return false;
    const id = idOf(wrapped);
    const previous = this.#entries.get(id);
    if (previous !== undefined && previous.key !== key) previous.key.fill(0);
    this.#entries.delete(id);
    this.#entries.set(id, { aad, key });
    if (this.#entries.size > this.capacity) {
      const [oldest, e] = this.#entries.entries().next().value as [string, Entry];
      e.key.fill(0);
      this.#entries.delete(oldest);
    }
    return true;
  }

  clear(): void {
    for (const e of this.#entries.values()) e.key.fill(0);
    this.#entries.clear();
  }
}

function idOf(wrapped: Uint8Array): string {
  return Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength).toString("latin1");
}
