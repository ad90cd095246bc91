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
import { UidLru } from "../uid-lru.js";
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
  /** Every plaintext is zeroed when its entry leaves, however it leaves. */
  readonly #entries: UidLru<Entry>;
  /** Entries larger than this are never cached (one big value must not flush the rest). */
  readonly maxEntryBytes: number;

  constructor(readonly maxBytes: number) {
    this.maxEntryBytes = Math.floor(maxBytes / 8);
    this.#entries = new UidLru<Entry>(maxBytes, (e) => e.plaintext.fill(0));
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#entries.bytes;
  }

  /** True when some version of this secret is held (for tests and diagnostics). */
  holds(uid: string): boolean {
    return this.#entries.holds(uid);
  }

  /** The plaintext this exact row and blob opened to under `ring`. The caller must not modify or keep it. */
  get(ring: Keyring, row: PlaintextRow, v: SealedRef): Buffer | undefined {
    if (this.maxBytes <= 0) return undefined;
    const key = keyOf(row.uid, v.version);
    const e = this.#entries.peek(key);
    if (e === undefined) return undefined;
    if (e.ring !== ring) {
      // Opened under a keyring that has since been replaced: it may name a retired KEK.
      this.#entries.delete(key);
      return undefined;
    }
    if (e.tenant !== row.tenant || e.mesh !== row.mesh || e.name !== row.name || !e.dek.equals(v.dek) || !e.payload.equals(v.payload)) {
      return undefined;
    }
    this.#entries.touch(key, e);
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
    this.#entries.set(keyOf(row.uid, v.version), entry);
    return true;
  }

  /** Drops (and zeroes) every version of the secret with this uid. */
  invalidate(uid: string): void {
    this.#entries.invalidate(uid);
  }

  /** Drops and zeroes everything. */
  clear(): void {
    this.#entries.clear();
  }
}

function keyOf(uid: string, version: number): string {
  return `${uid}\0${version}`;
}
