/**
 * A bounded cache of opened (decrypted) version payloads, so a hot secret is not
 * decrypted again on every read: a decipher set-up per call (key schedule, GHASH tables)
 * was the largest single cost of GetSecret and ProjectSecrets outside grpc-js.
 *
 * It is a memo of one pure function, never a second source of truth: an entry is found
 * only for the exact bytes it was opened from (row identity tenant/mesh/name/uid/version,
 * i.e. the AAD, plus the wrapped data key and the payload, compared in full) and only
 * under the same keyring object (a reloaded KEK file misses everything). So it can never
 * answer for another tenant's row, for a changed or tampered row, or after a KEK is
 * retired; authorization, expiry and leases are still checked per call by the caller,
 * which gets its own decoded copy of the values.
 *
 * Memory: bounded by bytes (plaintext, the copies of payload and wrapped key, the row's
 * strings); the least recently used entry goes first. Every plaintext is zeroed when its
 * entry leaves (eviction, invalidation, clear). The server drops a secret's entries on
 * the change feed (a write on any worker or replica), so a deleted or replaced value
 * does not stay in memory until evicted.
 */
import type { Keyring } from "./keyring.js";

export interface PlaintextRow {
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly uid: string;
}

export interface SealedRef {
  readonly version: number;
  readonly dek: Uint8Array;
  readonly payload: Uint8Array;
}

interface Entry {
  readonly ring: Keyring;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly uid: string;
  readonly dek: Buffer;
  readonly payload: Buffer;
  readonly plaintext: Buffer;
  readonly bytes: number;
}

/** Per-entry bookkeeping beyond the buffers and strings (Map slot, objects, headers). */
const ENTRY_OVERHEAD = 256;

export class PlaintextCache {
  readonly #entries = new Map<string, Entry>();
  readonly #keysByUid = new Map<string, Set<string>>();
  #bytes = 0;
  /** Entries larger than this are never cached (one big value must not flush the rest). */
  readonly maxEntryBytes: number;

  constructor(readonly maxBytes: number) {
    this.maxEntryBytes = Math.floor(maxBytes / 8);
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** True when some version of this secret is held (for tests and diagnostics). */
  holds(uid: string): boolean {
    return this.#keysByUid.has(uid);
  }

  /** The plaintext this exact row and blob opened to under `ring`. The caller must not modify or keep it. */
  get(ring: Keyring, row: PlaintextRow, v: SealedRef): Buffer | undefined {
    if (this.maxBytes <= 0) return undefined;
    const key = keyOf(row.uid, v.version);
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.ring !== ring) {
      // Opened under a keyring that has since been replaced: it may name a retired KEK.
      this.#remove(key);
      return undefined;
    }
    if (e.tenant !== row.tenant || e.mesh !== row.mesh || e.name !== row.name || !e.dek.equals(v.dek) || !e.payload.equals(v.payload)) {
      return undefined;
    }
    this.#entries.delete(key); // re-insert: Map order is the recency order
    this.#entries.set(key, e);
    return e.plaintext;
  }

  /**
   * Takes ownership of `plaintext` (zeroed when its entry leaves) and returns true, or
   * returns false when it is not cached (off, or too large): the caller then wipes it.
   */
  add(ring: Keyring, row: PlaintextRow, v: SealedRef, plaintext: Buffer): boolean {
    if (this.maxBytes <= 0) return false;
    const bytes = ENTRY_OVERHEAD + plaintext.length + v.payload.length + v.dek.length + 2 * (row.tenant.length + row.mesh.length + row.name.length + row.uid.length);
    if (bytes > this.maxEntryBytes) return false;
    const key = keyOf(row.uid, v.version);
    this.#remove(key);
    const entry: Entry = {
      ring,
      tenant: row.tenant,
      mesh: row.mesh,
      name: row.name,
      uid: row.uid,
      dek: Buffer.from(v.dek),
      payload: Buffer.from(v.payload),
      plaintext,
      bytes,
    };
    this.#entries.set(key, entry);
    this.#bytes += bytes;
    let keys = this.#keysByUid.get(row.uid);
    if (keys === undefined) this.#keysByUid.set(row.uid, (keys = new Set()));
    keys.add(key);
    while (this.#bytes > this.maxBytes) this.#remove(this.#entries.keys().next().value as string);
    return true;
  }

  /** Drops (and zeroes) every version of the secret with this uid. */
  invalidate(uid: string): void {
    const keys = this.#keysByUid.get(uid);
    if (keys === undefined) return;
    for (const key of [...keys]) this.#remove(key);
  }

  /** Drops and zeroes everything. */
  clear(): void {
    for (const e of this.#entries.values()) e.plaintext.fill(0);
    this.#entries.clear();
    this.#keysByUid.clear();
    this.#bytes = 0;
  }

  #remove(key: string): void {
    const e = this.#entries.get(key);
    if (e === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= e.bytes;
    e.plaintext.fill(0);
    const keys = this.#keysByUid.get(e.uid);
    keys?.delete(key);
    if (keys?.size === 0) this.#keysByUid.delete(e.uid);
  }
}

function keyOf(uid: string, version: number): string {
  return `${uid}\0${version}`;
}
