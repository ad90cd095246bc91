/**
 * A bounded cache of encoded answers built from decrypted values (ProjectSecrets), so a
 * hot projection is not authorized, opened, digested and encoded again on every call.
 *
 * Like PlaintextCache it is a memo of a pure function, never a second source of truth.
 * The answer is a function of the caller (tenant, sub, roles, meshes: the key holds all
 * of them and the whole request, serialized unambiguously), of the stored rows of its
 * sources and of the time. An entry therefore answers only when:
 * - the key is the same: the same caller and request;
 * - its sources read again are the same stored state: each row's stamp (uid, version,
 *   etag, the grants MAC, the row MAC; see answers.ts) is what it was, compared by value,
 *   not by object identity, so a fresh object for an unchanged row (a read cache that
 *   refilled, a back-end that hands out new objects) still hits, and any write of a
 *   secret, its versions or its grants (each changes the etag or a MAC) misses;
 * - the keyring object is the same (a reloaded KEK file misses everything);
 * - the time is before the earliest expiry among the rows and their grants.
 * Authentication still runs on every call before the cache is asked, and the audit
 * event and log line are written per call, hit or miss.
 *
 * Memory: bounded by bytes (the answer, the key and the stamps; an entry keeps no row
 * alive); least recently used out first. Every answer is zeroed when its entry leaves
 * (eviction, invalidation, clear), and callers get a copy, so a buffer still queued for
 * a socket is never zeroed under it. The server drops an answer's entries on the change
 * feed when any of its sources changes (a write on any worker or replica).
 */
import { UidLru } from "../../uid-lru.js";

/** The keyring in force, compared by identity only: a reloaded KEK file misses every entry. */
export interface KeyGeneration {
  current(): object;
}

/**
 * What a source row is, for deciding a hit: `text` names its uid, versions, etag and MACs;
 * `payload` and `dek` are its stored ciphertext and wrapped key, compared byte for byte
 * (no MAC covers them: their AEAD does, so a swapped blob must miss and be decrypted).
 */
export interface Stamp {
  readonly text: string;
  readonly payload?: Uint8Array | undefined;
  readonly dek?: Uint8Array | undefined;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === b) return true;
  return a !== undefined && b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.text === b.text && sameBytes(a.payload, b.payload) && sameBytes(a.dek, b.dek);
}

export interface AnswerSource {
  /** The secret's uid, for invalidation on the change feed. */
  readonly uid: string;
}

interface Entry<M> {
  readonly uid: readonly string[];
  readonly ring: object;
  /** One stamp per source, in order (text "" for a source that was missing). */
  readonly stamps: readonly Stamp[];
  readonly validUntil: number;
  readonly encoded: Buffer;
  readonly meta: M;
  readonly bytes: number;
}

/** Per-entry bookkeeping beyond the buffers and strings (Map slots, objects, headers). */
const ENTRY_OVERHEAD = 512;

export class AnswerCache<M> {
  readonly #entries: UidLru<Entry<M>>;
  /** Answers larger than this are never cached (one big answer must not flush the rest). */
  readonly maxEntryBytes: number;

  constructor(readonly maxBytes: number) {
    this.maxEntryBytes = Math.floor(maxBytes / 8);
    this.#entries = new UidLru<Entry<M>>(maxBytes, (e) => e.encoded.fill(0));
  }

  get on(): boolean {
    return this.maxBytes > 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** True when some answer built from this secret is held (for tests and diagnostics). */
  holds(uid: string): boolean {
    return this.#entries.holds(uid);
  }

  /** What the entry under `key` was stored with (to read its sources again), without using it. */
  meta(key: string): M | undefined {
    return this.#entries.peek(key)?.meta;
  }

  /**
   * A copy of the answer under `key` when it was built from rows with exactly these
   * stamps, under this keyring, and `now` is before its first expiry; else undefined.
   */
  answer(key: string, ring: object, stamps: readonly Stamp[], now: number): { readonly encoded: Buffer; readonly meta: M } | undefined {
    const e = this.#entries.peek(key);
    if (e === undefined) return undefined;
    if (e.ring !== ring || now >= e.validUntil) {
      this.#entries.delete(key); // can never answer again
      return undefined;
    }
    if (stamps.length !== e.stamps.length) return undefined;
    for (let i = 0; i < stamps.length; i++) if (!sameStamp(stamps[i]!, e.stamps[i]!)) return undefined;
    this.#entries.touch(key, e);
    return { encoded: Buffer.from(e.encoded), meta: e.meta };
  }

  /**
   * Takes ownership of `encoded` (zeroed when its entry leaves) as the answer for `key`,
   * built from rows with `stamps` (text "" for a source that was missing) whose secrets are
   * `sources`, valid until `validUntil`, and returns true; or returns false when it is
   * not kept (off, or too large). The caller answers with a copy when it was kept.
   */
  add(key: string, ring: object, stamps: readonly Stamp[], sources: readonly AnswerSource[], validUntil: number, encoded: Buffer, meta: M): boolean {
    if (!this.on) return false;
    const bytes = ENTRY_OVERHEAD + encoded.length + 2 * key.length + stamps.reduce((n, t) => n + 2 * t.text.length + (t.payload?.length ?? 0) + (t.dek?.length ?? 0), 0) + sources.reduce((n, s) => n + 2 * s.uid.length, 0);
    if (bytes > this.maxEntryBytes) return false;
    const uid = sources.map((s) => s.uid);
    this.#entries.set(key, { uid, ring, stamps, validUntil, encoded, meta, bytes });
    return true;
  }

  /** Drops (and zeroes) every answer built from the secret with this uid. */
  invalidate(uid: string): void {
    this.#entries.invalidate(uid);
  }

  /** Drops and zeroes everything. */
  clear(): void {
    this.#entries.clear();
  }
}
